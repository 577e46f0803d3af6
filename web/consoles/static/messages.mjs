// The consoles' shared strings (the page labels sit with each page). Keep keys stable; {name} placeholders.
const en = {
  "error.generic": "Something went wrong. Try again in a moment.",
  "error.network": "The service could not be reached. Check your connection and try again.",
  "error.signed_out": "Your console session has ended. Open a new console link to sign in again.",
  "empty.generic": "Nothing here yet.",
  "saved": "Saved.",
};

/** The string for a key with its placeholders filled in. */
export function text(key, values = {}) {
  const s = en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (k in values ? String(values[k]) : `{${k}}`));
}
