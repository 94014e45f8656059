// Injected before </body> of a copy of the report by tests/test_report.py. Once the page has loaded it
// reads the report as a person would: the start page (rule graph), then every category from the menu and
// every result of it through its "view" button. It records what each view shows (an image: whether it
// decoded and its size; HTML: the iframe's source), every src/href of the DOM in every view, and every
// resource the page fetched, as JSON in a hidden pre element (id report-check) that the test reads back
// from chromium --dump-dom.
// At the end it shows the first result of category FINAL_CATEGORY (for the screenshot).
(function () {
  var FINAL_CATEGORY = "Training";
  var check = window.__check;
  check.views = [];
  check.refs = [];
  check.categories = [];
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }
  function collectRefs(where) {
    document.querySelectorAll("*").forEach(function (node) {
      ["src", "href", "srcset", "poster", "data", "action", "xlink:href"].forEach(function (attr) {
        var value = node.getAttribute(attr);
        if (value !== null) {
          check.refs.push({view: where, tag: node.tagName.toLowerCase(), attr: attr, value: value.slice(0, 80)});
        }
      });
    });
  }
  function imageState(img) {
    return new Promise(function (resolve) {
      function done() { resolve({complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}); }
      if (img.complete) { done(); return; }
      img.addEventListener("load", done);
      img.addEventListener("error", done);
      setTimeout(done, 5000);
    });
  }
  function viewButtons() {
    // each result row of the navbar: [view (eye)] [info] buttons
    return Array.from(document.querySelectorAll("#app table [role=group] > a:first-child"));
  }
  async function openCategory(name) {
    app.setView({navbarMode: "menu"});
    await sleep(200);
    app.showCategory(name);
    await sleep(200);
  }
  async function run() {
    for (var i = 0; i < 200 && typeof app === "undefined"; i++) await sleep(50);
    check.app = typeof app !== "undefined";
    if (!check.app) return;
    await sleep(500);
    check.start_view = app.state.content;
    check.rulegraph_drawn = document.querySelectorAll("#rulegraph canvas, #rulegraph svg").length;
    check.rulegraph_rules = rulegraph_spec.data[0].values.map(function (node) { return node.rule; });
    collectRefs("start");
    var names = Object.keys(categories);
    for (var c = 0; c < names.length; c++) {
      await openCategory(names[c]);
      var count = viewButtons().length;
      check.categories.push({name: names[c], results: count});
      collectRefs("category " + names[c]);
      for (var b = 0; b < count; b++) {
        viewButtons()[b].click();  // the rows re-render after a click: look the b-th button up again
        await sleep(300);
        var view = {category: names[c], result: app.state.resultPath, content: app.state.content};
        var uri = view.result ? results[view.result].data_uri : null;
        var img = Array.from(document.querySelectorAll("#app img")).find(function (i) { return i.getAttribute("src") === uri; });
        var frame = Array.from(document.querySelectorAll("#app iframe")).find(function (f) { return f.getAttribute("src") === uri; });
        if (img) Object.assign(view, {shown: "img"}, await imageState(img));
        if (frame) view.shown = "iframe";
        check.views.push(view);
        collectRefs(String(view.result));
      }
    }
    if (names.indexOf(FINAL_CATEGORY) >= 0) {
      await openCategory(FINAL_CATEGORY);
      viewButtons()[0].click();
      await sleep(300);
      check.final_view = app.state.resultPath;
    }
    check.resources = performance.getEntriesByType("resource").map(function (e) { return e.name.slice(0, 120); });
  }
  window.addEventListener("load", function () {
    run().catch(function (e) { check.errors.push("check_report.js: " + e); }).then(function () {
      var pre = document.createElement("pre");
      pre.id = "report-check";
      pre.style.display = "none";
      pre.textContent = JSON.stringify(check);
      document.body.appendChild(pre);
    });
  });
})();
