// Loads the Wasm client. Kept outside index.html so the Content-Security-Policy
// can forbid inline scripts.
import init from "/pkg/shieldcall_web.js";

init().catch((err) => {
  const app = document.getElementById("app");
  app.setAttribute("data-state", "failed");
  app.textContent = "Shieldcall could not start in this browser: " + err;
});
