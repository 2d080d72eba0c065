// Reads a stage's shell command far enough to name the programs it starts: the first word of
// each simple command (split at ;, &&, ||, | and &), after variable assignments and keywords.
// Not a shell parser: words built at run time ($VAR, `cmd`, $(cmd)) are left out.

/** One simple command: the program it runs and its arguments, quotes removed. */
export interface SimpleCommand {
  program: string;
  args: string[];
}

/** Commands the shell runs itself: nothing to find on PATH. */
const BUILTINS = new Set([
  ".", ":", "[", "[[", "alias", "bg", "break", "cd", "command", "continue", "echo", "eval", "exec", "exit", "export", "false", "fg", "getopts", "hash",
  "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set", "shift", "source", "test", "times", "trap", "true", "type", "ulimit",
  "umask", "unalias", "unset", "wait",
]);
/** Words that may come before the program of a simple command. */
const PREFIXES = new Set(["!", "{", "(", "if", "then", "else", "elif", "do", "while", "until", "time", "exec", "nohup"]);
/** Words that close a compound command: nothing to run. */
const CLOSERS = new Set(["}", ")", "fi", "done", "esac"]);
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;
const REDIRECT = /^(\d*|&)[<>]/;

/** Splits at the operators between simple commands and at blanks, keeping quoted text together. */
function tokenize(text: string): string[][] {
  const commands: string[][] = [[]];
  let word = "";
  let quoted = false;
  let dynamic = false;
  let quote: '"' | "'" | undefined;
  const endWord = () => {
    if (word !== "" || quoted) (commands[commands.length - 1] as string[]).push(dynamic ? "\0" : word);
    word = "";
    quoted = false;
    dynamic = false;
  };
  const endCommand = () => {
    endWord();
    commands.push([]);
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else if (ch === "\\" && quote === '"' && i + 1 < text.length) word += text[++i];
      else {
        if (quote === '"' && (ch === "$" || ch === "`")) dynamic = true;
        word += ch;
      }
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      quoted = true;
    } else if (ch === "\\" && i + 1 < text.length) {
      word += text[++i];
    } else if (ch === "$" || ch === "`") {
      dynamic = true;
      word += ch;
    } else if (ch === "&" && (/[<>]$/.test(word) || text[i + 1] === ">")) {
      // A redirection (2>&1, &>file), not the end of a command.
      word += ch;
    } else if (ch === ";" || ch === "|" || ch === "&" || ch === "\n") {
      // ;, |, ||, &, && and a newline all end a simple command; "|&" and ";;" too.
      endCommand();
      while (i + 1 < text.length && "|&;".includes(text[i + 1] as string)) i++;
    } else if (ch === "#" && word === "") {
      while (i + 1 < text.length && text[i + 1] !== "\n") i++;
    } else if (ch === " " || ch === "\t") {
      endWord();
    } else if ((ch === "(" || ch === ")") && word === "") {
      endWord();
      (commands[commands.length - 1] as string[]).push(ch);
    } else {
      word += ch;
    }
  }
  endWord();
  return commands.filter((c) => c.length > 0);
}

/**
 * The programs a command line starts, with their arguments, in order; shell builtins and
 * words built at run time are left out.
 *
 * @example
 * simpleCommands("NODE_ENV=test npm ci && npx tsc -p . | tee log.txt");
 * // [{ program: "npm", args: ["ci"] }, { program: "npx", args: ["tsc", "-p", "."] }, { program: "tee", args: ["log.txt"] }]
 */
export function simpleCommands(text: string): SimpleCommand[] {
  const out: SimpleCommand[] = [];
  for (const words of tokenize(text)) {
    let i = 0;
    for (;;) {
      const w = words[i];
      if (w === undefined) break;
      if (PREFIXES.has(w) || ASSIGNMENT.test(w)) i++;
      // A redirection before the program: "2>" takes the next word as its file, "2>log" holds it.
      else if (REDIRECT.test(w)) i += /[<>&]$/.test(w) ? 2 : 1;
      else break;
    }
    // `env A=1 prog`: the program is after env's assignments and options.
    if (words[i] === "env") {
      i++;
      while (i < words.length && (ASSIGNMENT.test(words[i] as string) || (words[i] as string).startsWith("-"))) i++;
    }
    const program = words[i];
    if (program === undefined || program === "\0" || program === "" || BUILTINS.has(program) || CLOSERS.has(program)) continue;
    // Keywords of compound commands that are not a program: for/case lines name no program first.
    if (program === "for" || program === "case" || program === "in" || program === "function") continue;
    out.push({ program, args: words.slice(i + 1).filter((w) => w !== "\0") });
  }
  return out;
}
