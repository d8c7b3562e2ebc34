// The call page (/call/<id>), loaded on its own (a refresh, a link, a new tab): it joins the
// call with attach_call once its socket is open.

import { CallPage } from "../callpage.js";
import { runPage, startPage } from "../page.js";

async function main() {
  const page = await startPage({ memberOnly: true, askNotifications: false });
  new CallPage(page, location.pathname.split("/")[2]).start();
}

runPage(main);
