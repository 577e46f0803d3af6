// Iframe mode: the widget on the service's own origin, for pages whose CSP admits no third-party script.
// The embedding page (Commerce.mount with mode "iframe", or a few lines of its own) posts
// {type: "commerce:init", token, feature | surface, ...}; the frame answers every widget event with a
// message of the same type, sends its height as "commerce:resize", and asks for a new token with
// "commerce:token-expired" (reply {type: "commerce:token", token}). Messages go to the embedding origin only.
import { mount } from "./widget.mjs";

document.body.style.margin = "0"; // CSSOM, not an inline style attribute: fine under the frame's CSP
let parentOrigin = null;
let element = null;
const EVENTS = ["commerce:access-granted", "commerce:approval-requested", "commerce:dismissed"];

function post(type, detail) {
  if (parentOrigin) window.parent.postMessage({ type, detail }, parentOrigin);
}

function start(origin, data) {
  parentOrigin = origin;
  const options = { token: data.token, feature: data.feature, surface: data.surface, lang: data.lang,
    pollMs: data.pollMs, triggerFeature: data.triggerFeature, messages: data.messages,
    onTokenExpired: () => new Promise((resolve) => {
      const wait = (e) => {
        if (e.source !== window.parent || e.origin !== parentOrigin || !e.data || e.data.type !== "commerce:token") return;
        window.removeEventListener("message", wait);
        resolve(e.data.token || null);
      };
      window.addEventListener("message", wait);
      post("commerce:token-expired", {});
    }) };
  element = mount(document.getElementById("root"), options);
  for (const type of EVENTS) element.addEventListener(type, (e) => post(type, e.detail));
  const size = () => {
    const dialog = element.shadowRoot && element.shadowRoot.querySelector("dialog[open]");
    const height = Math.max(document.documentElement.scrollHeight, dialog ? dialog.scrollHeight + 48 : 0);
    post("commerce:resize", { height });
  };
  new ResizeObserver(size).observe(document.body);
  new MutationObserver(size).observe(element.shadowRoot, { subtree: true, childList: true, attributes: true });
}

window.addEventListener("message", (e) => {
  if (e.source !== window.parent || !e.data || typeof e.data !== "object") return;
  if (e.data.type === "commerce:init" && !element) start(e.origin, e.data);
  else if (e.data.type === "commerce:token" && e.origin === parentOrigin && element && !element.options.onTokenExpired) element.token = e.data.token;
});
window.parent.postMessage({ type: "commerce:frame-ready" }, "*"); // carries nothing; the page answers with init
