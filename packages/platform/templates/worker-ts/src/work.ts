// The work itself: what one job asks for and what it gives back. Replace it with yours.

export interface Job {
  id: string;
  text: string;
}

export interface JobResult {
  words: number;
  longest: string;
}

/** Counts a text's words and finds the longest; a job without text fails. */
export function work(job: Job): JobResult {
  if (typeof job.text !== "string" || job.text.trim() === "") throw new Error("job.text must be non-empty text");
  const words = job.text.split(/\s+/).filter((w) => w !== "");
  return { words: words.length, longest: words.reduce((a, b) => (b.length > a.length ? b : a), "") };
}
