// Turning the page a call starts on (the member page of the caller, any page of the host that
// accepted) into the call page without reloading it. Its socket is the call's connection:
// reloading would close it, and a caller's page closing while the call rings cancels the call.

// Frames of the call that arrive while the call page is being fetched are kept for it.
const CALL_FRAMES = ["call_state", "signal"];

function swapIn(html) {
  const next = new DOMParser().parseFromString(html, "text/html");
  const main = next.getElementById("main");
  if (!main) throw new Error("the call page has no #main");
  document.getElementById("main").replaceWith(document.importNode(main, true));
  // The call page brings its own toast region: the one this page made (toasts.js) goes.
  const regions = document.querySelectorAll("#toasts");
  if (regions.length > 1) [...regions].filter((region) => !region.closest("#main")).forEach((region) => region.remove());
  const skip = next.querySelector(".skip-link");
  if (skip) document.querySelector(".skip-link")?.replaceWith(document.importNode(skip, true));
  document.body.className = next.body.className;
  document.title = next.title;
}

async function fetchCallPage(callId) {
  const response = await fetch(`/call/${callId}`, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`the call page answered ${response.status}`);
  return response.text();
}

/**
 * Show the call page of `callId` here. `page` is {me, live} of this page; `first` the
 * call_state that brought us here. Falls back to loading /call/<id> if the page cannot be
 * fetched.
 */
export async function openCallHere(page, callId, first) {
  if (document.body.classList.contains("page-call")) {
    // Already the page of another call, which cannot share it: this page leaves that call.
    location.assign(`/call/${callId}`);
    return;
  }
  const backlog = [first];
  const offs = CALL_FRAMES.map((type) => page.live.on(type, (frame) => {
    if (frame.call_id === callId) backlog.push(frame);
  }));
  let CallPage;
  try {
    const [module, html] = await Promise.all([import("./callpage.js"), fetchCallPage(callId)]);
    CallPage = module.CallPage;
    swapIn(html);
  } catch (error) {
    console.warn("interKanect: loading the call page instead of showing it here:", error);
    offs.forEach((off) => off());
    location.assign(`/call/${callId}`);
    return;
  }
  offs.forEach((off) => off());
  history.pushState({ callId }, "", `/call/${callId}`);
  document.querySelectorAll("#site-nav [aria-current]").forEach((link) => link.removeAttribute("aria-current"));
  // Back (or forward) leaves the call page: load whatever page the address now names.
  window.addEventListener("popstate", () => location.reload(), { once: true });
  new CallPage(page, callId).start(backlog);
  document.getElementById("main").focus({ preventScroll: true });
}
