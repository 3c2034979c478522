// Refreshes the open safety-alert list of a page (the element #live-alerts) without a reload.
// Every few seconds it asks /api/v1/alerts/state (counts and ids only); when that changes, it
// fetches the page (data-source) again and swaps in the new #live-alerts, keeping any text being typed.
(function () {
  'use strict';
  var region = document.getElementById('live-alerts');
  // The navigation's count of open alerts, on every page (empty until the first answer).
  var badge = document.getElementById('nav-alert-badge');
  if (!region && !badge) return;
  var every = 3000;
  var stamp = null;

  function keep(oldRoot, newRoot) {
    oldRoot.querySelectorAll('textarea, input:not([type=hidden])').forEach(function (el) {
      if (!el.value || !el.form) return;
      var action = el.form.getAttribute('action');
      var twin = newRoot.querySelector('form[action="' + action + '"] [name="' + el.name + '"]');
      if (twin) twin.value = el.value;
    });
  }

  function refresh() {
    // The page's own address (a page shown after a form post names it in data-source).
    var source = region.getAttribute('data-source') || window.location.pathname;
    return fetch(source, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.getElementById('live-alerts');
        if (!fresh) return;
        keep(region, fresh);
        region.innerHTML = fresh.innerHTML;
        region.setAttribute('data-refreshed', stamp || '');
      });
  }

  function poll() {
    fetch('/api/v1/alerts/state', { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) {
        if (!s) return null;
        if (badge) {
          badge.textContent = s.open > 0 ? String(s.open) : '';
          badge.hidden = !(s.open > 0);
          badge.setAttribute('aria-label', s.open + ' open safety alert' + (s.open === 1 ? '' : 's'));
        }
        if (!region) return null;
        var changed = stamp !== null && s.stamp !== stamp;
        // A page that knows the state it was drawn from catches a change since; otherwise the
        // first answer is the baseline.
        var drawn = region.getAttribute('data-stamp');
        var first = stamp === null && drawn !== null && drawn !== s.stamp;
        stamp = s.stamp;
        return changed || first ? refresh() : null;
      })
      .catch(function () { /* offline for a moment: try again on the next tick */ })
      .then(function () { window.setTimeout(poll, every); });
  }
  poll();
})();
