/* Dash's start for the pages whose HTML carries their first picture (dashboard/page_scripts.py
 * DEFERRED; page_scripts keeps this file off every other page). Dash's scripts are listed there as
 * preload links (data-src), fetched from the start; they run only once the picture has been
 * painted: a frame, then each script in the page's order (async = false keeps the order), then
 * `new DashRenderer()`, as Dash's own inline start does after its scripts. */
(function () {
  "use strict";
  let started = false;

  function boot() {
    if (started) return;
    started = true;
    const srcs = Array.prototype.map.call(document.querySelectorAll("link[data-src]"), function (l) { return l.dataset.src; });
    let left = srcs.length;
    function one() {
      left -= 1;
      if (left === 0 && !window.renderer && typeof window.DashRenderer === "function") {
        window.renderer = new window.DashRenderer();
      }
    }
    srcs.forEach(function (src) {
      const s = document.createElement("script");
      s.src = src;
      s.async = false;
      s.onload = one;
      s.onerror = one;  // Dash then starts and says what is missing
      document.body.appendChild(s);
    });
    // no deferred scripts: not a page this file starts (an app serving the assets folder without
    // dashboard.page_scripts, such as a test's bare Dash app); Dash's own start has run, and a
    // second renderer would draw the layout twice into one DOM
    if (!srcs.length) return;
  }

  // after the picture's frame and one more (a busy machine presents a frame late, and a script
  // started in between would hold it back); a hidden tab paints no frame: start at once
  if (document.visibilityState === "hidden") boot();
  else requestAnimationFrame(function () { requestAnimationFrame(function () { setTimeout(boot, 0); }); });
})();
