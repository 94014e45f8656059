// Injected first into <head> of a copy of the report by tests/test_report.py: records every script
// error, unhandled promise rejection and console.error of the page, for check_report.js to hand back.
window.__check = {errors: [], console: []};
window.addEventListener("error", function (ev) {
  window.__check.errors.push(String(ev.message || ev) + (ev.filename ? " (" + ev.filename.slice(0, 60) + ")" : ""));
}, true);
window.addEventListener("unhandledrejection", function (ev) {
  window.__check.errors.push("unhandled rejection: " + String(ev.reason));
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__check.console.push(Array.prototype.map.call(arguments, String).join(" ").slice(0, 300));
    return original.apply(console, arguments);
  };
})();
