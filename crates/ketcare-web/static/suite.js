// Live suite: listens to /suite/events and updates the chair rows; new alarms get an
// Acknowledge button (a normal form post carrying the page's CSRF token).
(function () {
  "use strict";
  var table = document.getElementById("suite");
  var status = document.getElementById("live-status");
  if (!table || !window.EventSource) { return; }
  var csrf = table.getAttribute("data-csrf") || "";
  var canAct = table.getAttribute("data-can-act") === "true";
  var es = new EventSource("/suite/events");
  es.onopen = function () { status.textContent = "live"; };
  es.onerror = function () { status.textContent = "reconnecting…"; };
  function row(id) { return document.getElementById("chair-" + id); }
  function text(el, t) { if (el) { el.textContent = t; } }
  es.addEventListener("vital", function (e) {
    var ev = JSON.parse(e.data);
    var r = row(ev.session_id);
    if (!r) { return; }
    var t = new Date(ev.data.at);
    text(r.querySelector(".latest"), ev.data.summary + " (" + t.toLocaleTimeString() + ")");
    r.setAttribute("data-last-vital", String(ev.data.vital_id));
    r.setAttribute("data-last-control-id", ev.data.control_id || "");
  });
  es.addEventListener("session", function (e) {
    var ev = JSON.parse(e.data);
    var r = row(ev.session_id);
    if (!r) { if (ev.data.phase !== "scheduled") { window.location.reload(); } return; }
    text(r.querySelector(".phase"), ev.data.label);
  });
  es.addEventListener("alarm", function (e) {
    var ev = JSON.parse(e.data);
    var a = ev.data.alarm;
    var r = row(ev.session_id);
    if (!r) { return; }
    var id = "alarm-" + ev.session_id + "-" + a.id;
    var box = document.getElementById(id);
    if (a.state === "resolved") { if (box) { box.remove(); } return; }
    if (!box) {
      box = document.createElement("div");
      box.id = id;
      r.querySelector(".alarms").appendChild(box);
    }
    box.className = "alarm alarm-" + a.state;
    box.textContent = "";
    var s = document.createElement("strong");
    s.textContent = a.kind.replace(/_/g, " ");
    box.appendChild(s);
    box.appendChild(document.createElement("br"));
    box.appendChild(document.createTextNode(a.detail));
    box.appendChild(document.createElement("br"));
    var em = document.createElement("em");
    em.textContent = "Suggested: " + a.action.text;
    box.appendChild(em);
    if (a.acknowledged) {
      box.appendChild(document.createElement("br"));
      box.appendChild(document.createTextNode("acknowledged by " + a.acknowledged.by));
    } else if (canAct) {
      var f = document.createElement("form");
      f.method = "post";
      f.action = "/sessions/" + ev.session_id + "/commands";
      f.className = "inline";
      [["csrf_token", csrf], ["command", "acknowledge_alarm"], ["alarm", String(a.id)]].forEach(function (kv) {
        var i = document.createElement("input");
        i.type = "hidden"; i.name = kv[0]; i.value = kv[1];
        f.appendChild(i);
      });
      var b = document.createElement("button");
      b.type = "submit"; b.textContent = "Acknowledge";
      f.appendChild(b);
      box.appendChild(f);
    }
  });
})();
