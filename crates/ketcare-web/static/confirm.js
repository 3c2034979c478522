// Destructive actions ask first: a submit button with data-confirm="question" submits its form
// only when the user confirms. Without this script the form still works (the server checks every
// rule); the button's danger style still marks it.
(function () {
  'use strict';
  document.addEventListener('submit', function (e) {
    var b = e.submitter;
    var q = b && b.getAttribute('data-confirm');
    if (q && !window.confirm(q)) e.preventDefault();
  });
})();

// The site chooser in the header: choosing a site submits it at once, back to this page.
// Without this script its button does the same, back to the home page.
(function () {
  'use strict';
  document.addEventListener('change', function (e) {
    var s = e.target;
    if (!s.matches || !s.matches('form.site-choice select')) return;
    var here = s.form.querySelector('[data-here]');
    if (here) here.value = location.pathname + location.search;
    s.form.submit();
  });
})();
