// Type-ahead for fields that name a patient (input[data-patient-picker]): as a name, an MRN
// fragment or a date of birth is typed, matching patients are offered as "Family, Given (MRN)"
// choices in a native datalist. The server still resolves the choice (the MRN in parentheses,
// checked against the name); without this script the field takes an MRN or "Name (MRN)" as typed.
(function () {
  'use strict';
  document.querySelectorAll('input[data-patient-picker]').forEach(function (input) {
    var list = document.createElement('datalist');
    list.id = input.id + '-choices';
    input.insertAdjacentElement('afterend', list);
    input.setAttribute('list', list.id);
    input.setAttribute('autocomplete', 'off');
    var timer = null;
    var asked = '';
    input.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var q = input.value.trim();
        // A chosen "Name (MRN)" needs no more suggestions.
        if (q.length < 2 || q === asked || /\([^()]+\)$/.test(q)) return;
        asked = q;
        fetch('/api/v1/patients?limit=10&q=' + encodeURIComponent(q), {
          credentials: 'same-origin', headers: { Accept: 'application/json' }
        })
          .then(function (r) { return r.ok ? r.json() : []; })
          .then(function (people) {
            if (q !== asked) return;
            list.replaceChildren.apply(list, people.map(function (p) {
              var o = document.createElement('option');
              o.value = p.family_name + ', ' + p.given_name + ' (' + p.mrn + ')';
              o.label = 'born ' + p.date_of_birth;
              return o;
            }));
          })
          .catch(function () { /* offline: the field still takes what is typed */ });
      }, 150);
    });
  });
})();
