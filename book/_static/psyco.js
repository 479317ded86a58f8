// Right-aligns the columns of numbers of every table on the page (pandas Styler, plain DataFrame and Markdown tables):
// in a column whose cells are all numbers (a number, a percentage, a count with thousands separators, an amount in
// dollars) or missing values ("-"), every cell and the header get the class psyco-num (styled by psyco.css).  A
// column that mixes numbers and text stays left-aligned.
(function () {
  "use strict";
  var NUMBER = /^[-+\u2212]?\$?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?(e[-+]?\d+)?\s?%?$/i;
  var MISSING = /^(-|\u2013|\u2014|nan|n\/a)$/i;

  function kind(cell) {
    var text = cell.textContent.trim();
    if (MISSING.test(text)) return "missing";
    return text && /\d/.test(text) && NUMBER.test(text) ? "number" : "text";
  }

  function columns(row) {
    var at = 0, cells = [];
    Array.prototype.forEach.call(row.cells, function (cell) {
      cells.push([at, cell]);
      at += cell.colSpan || 1;
    });
    return cells;
  }

  function alignNumbers(table) {
    var sections = table.tBodies.length ? Array.prototype.slice.call(table.tBodies) : [table];
    var numeric = {}, hasNumber = {}, cells = [];
    sections.forEach(function (section) {
      Array.prototype.forEach.call(section.rows, function (row) {
        columns(row).forEach(function (pair) {
          var col = pair[0], cell = pair[1];
          if (cell.tagName === "TH") return;  // an index label
          var k = kind(cell);
          cells.push(pair);
          if (k === "number") hasNumber[col] = true;
          if (k === "text") numeric[col] = false;
          else if (numeric[col] === undefined) numeric[col] = true;
        });
      });
    });
    var isNumeric = function (col) { return numeric[col] && hasNumber[col]; };
    cells.forEach(function (pair) {
      if (isNumeric(pair[0])) pair[1].classList.add("psyco-num");
    });
    if (!table.tHead) return;
    var header = table.tHead.rows[table.tHead.rows.length - 1];
    columns(header).forEach(function (pair) {
      if (isNumeric(pair[0])) pair[1].classList.add("psyco-num");
    });
  }

  function run() {
    document.querySelectorAll(".bd-article table").forEach(alignNumbers);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
