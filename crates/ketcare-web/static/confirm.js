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
