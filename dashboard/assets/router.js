/* The router's browser half (callbacks/router.py): the server renders a visit's first page into
 * the layout and names it in the ROUTED store. Asking the router for that same page again would
 * rebuild it, so the first matching URL only clears ROUTED; every other URL is routed. */
(function () {
  "use strict";
  const dc = (window.dash_clientside = window.dash_clientside || {});
  dc.router = {
    route: function (pathname, search, routed) {
      const nu = dc.no_update;
      if (routed) {
        if (pathname === null || pathname === undefined) return [nu, nu];  // the URL is not read yet
        if (routed.path === pathname && (routed.search || "") === (search || "")) return [nu, null];
      }
      return [{ path: pathname || "/", search: search || "" }, routed ? null : nu];
    },
  };
})();
