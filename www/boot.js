// Loads the Wasm client. Kept outside index.html so the Content-Security-Policy
// can forbid inline scripts. On /admin the admin page's own bundle loads beside it;
// the call client tells it when an admin is signed in (see shieldcall-admin).
import init from "/pkg/shieldcall_web.js";

function failed(err) {
  const app = document.getElementById("app");
  app.setAttribute("data-state", "failed");
  app.textContent = "Shieldcall could not start in this browser: " + err;
}

init().catch(failed);

if (location.pathname === "/admin") {
  import("/pkg/shieldcall_admin.js")
    .then((admin) => admin.default())
    .catch(failed);
}
