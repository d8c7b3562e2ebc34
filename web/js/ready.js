// The one signal every page gives when it has drawn its data: browser tests wait for
// body[data-ready="true"] ("error" if it failed: page.js runPage). A module of its own, so the
// call page (which a page turns into in place) needs nothing of page.js.

/** The page has drawn its data. */
export function pageReady() {
  document.body.dataset.ready = "true";
}
