// Session page: re-fetches the timeline section (GET /sessions/{sid}/timeline, same origin) when
// the live channel reports a vital, alarm or change of this session, and every 15 s while the
// session is open. Without this script the page shows the timeline as of its loading.
(function () {
  "use strict";
  var sec = document.getElementById("timeline");
  var body = document.getElementById("timeline-body");
  if (!sec || !body || !window.fetch) { return; }
  var src = sec.getAttribute("data-live");
  var sid = sec.getAttribute("data-session");
  if (!src) { return; }
  var pending = null;
  function refresh() {
    pending = null;
    fetch(src, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) { body.innerHTML = html; } })
      .catch(function () {});
  }
  function soon() { if (!pending) { pending = setTimeout(refresh, 500); } }
  setInterval(refresh, 15000);
  if (window.EventSource) {
    var es = new EventSource("/suite/events");
    ["vital", "alarm", "session"].forEach(function (kind) {
      es.addEventListener(kind, function (e) {
        try {
          if (String(JSON.parse(e.data).session_id) === sid) { soon(); }
        } catch (x) { /* not ours */ }
      });
    });
  }
})();
