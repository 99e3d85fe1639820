// While a campaign is scheduled, running or paused, reload its figures panel every few seconds; when
// its status changes (it completed, or someone paused it elsewhere), reload the page so that its
// buttons and state match.
(function () {
  "use strict";
  var PERIOD_MS = 4000;

  function statusOf(panel) {
    var table = panel.querySelector("table.campaign-figures");
    return table ? table.getAttribute("data-status") : null;
  }

  function poll(panel, shownStatus) {
    if (panel.getAttribute("data-live") !== "1") {
      return;
    }
    window.setTimeout(function () {
      fetch(panel.getAttribute("data-url"), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          return response.ok ? response.text() : Promise.reject(response.status);
        })
        .then(function (html) {
          var fresh = document.createElement("div");
          fresh.innerHTML = html;
          var table = fresh.querySelector("table.campaign-figures");
          if (!table) {
            return; // not the panel (a login page after the session ended): keep what is shown
          }
          panel.innerHTML = fresh.innerHTML;
          panel.setAttribute("data-live", table.getAttribute("data-live"));
          if (table.getAttribute("data-status") !== shownStatus) {
            window.location.reload();
          }
        })
        .catch(function () { /* try again on the next tick */ })
        .then(function () { poll(panel, shownStatus); });
    }, PERIOD_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var panel = document.getElementById("campaign-figures");
    if (panel) {
      poll(panel, statusOf(panel));
    }
  });
})();
