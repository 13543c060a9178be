// Live updates for the aimass console. Pages work without it: this only
// listens to /events (same origin) and swaps in the page's fresh <main>.
(function () {
  "use strict";
  var user = document.getElementById("user");
  var main = document.getElementById("main");
  if (!window.EventSource || !user || !main) {
    return;
  }
  var live = document.getElementById("live");
  var scope = document.body.getAttribute("data-scope") || "";
  var source = new EventSource("/events?ns=" + encodeURIComponent(scope));
  var timer = null;
  var submitting = false;
  // A form on its way to the server is never swapped out from under it.
  document.addEventListener("submit", function () { submitting = true; }, true);

  function editing() {
    var active = document.activeElement;
    return active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
  }

  function refresh() {
    timer = null;
    if (submitting) {
      return;
    }
    if (editing()) {
      // Never wipe what someone is typing; try again shortly.
      timer = window.setTimeout(refresh, 2000);
      return;
    }
    window.fetch(window.location.href, {
      headers: { "X-Fragment": "main" },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/login");
        return null;
      }
      return response.ok || response.status === 403 || response.status === 404 ? response.text() : null;
    }).then(function (html) {
      if (html !== null && html !== undefined && !submitting) {
        main.innerHTML = html;
        document.body.setAttribute("data-updated", String(Date.now()));
      }
    });
  }

  source.addEventListener("change", function () {
    if (timer === null) {
      timer = window.setTimeout(refresh, 100);
    }
  });
  source.addEventListener("denied", function () {
    source.close();
    if (live) { live.className = "live off"; }
    window.location.reload();
  });
  source.onopen = function () {
    if (live) { live.className = "live on"; }
    document.body.setAttribute("data-live", "on");
  };
  source.onerror = function () {
    if (live) { live.className = "live off"; }
    document.body.setAttribute("data-live", "off");
  };
})();
