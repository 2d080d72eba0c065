// Canonical JSON: one text per value, object keys sorted at every depth. Stores compare
// specs by this text (a reordered manifest is not a change) and write it to JSON columns.
/**
 * The canonical JSON text of `value`: what `JSON.stringify` would keep (toJSON applied,
 * undefined properties dropped), with object keys sorted at every depth.
 * Throws a TypeError for what JSON cannot hold (BigInt, circular objects, a bare undefined).
 *
 * @example
 * canonicalJson({ b: 1, a: { d: 2, c: undefined } }) // '{"a":{"d":2},"b":1}'
 */
export function canonicalJson(value) {
    const text = JSON.stringify(value);
    if (text === undefined)
        throw new TypeError(`${typeof value} is not JSON data`);
    // Round-tripping first leaves only plain JSON data (no cycles, no toJSON), so the
    // key sort below cannot loop and sees exactly what would have been stored.
    return JSON.stringify(sortKeys(JSON.parse(text)));
}
function sortKeys(value) {
    if (Array.isArray(value))
        return value.map(sortKeys);
    if (value === null || typeof value !== "object")
        return value;
    // fromEntries defines own properties, so a "__proto__" key stays data, not a prototype.
    return Object.fromEntries(Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys(value[key])]));
}
