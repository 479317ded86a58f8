// Right-aligns the columns of numbers of every table on the page (pandas Styler, plain DataFrame and Markdown tables):
// in a column whose cells are all numbers (a number, a percentage, a count with thousands separators, an amount in
// dollars) or missing values ("-"), every cell and its header get the class psyco-num (styled by psyco.css).  A column
// that mixes numbers and text stays left-aligned.  Columns are found on the table's grid, so the row labels of a
// pandas MultiIndex (cells spanning several rows) do not shift the columns of the rows below them.
(function () {
  "use strict";
  var NUMBER = /^[-+\u2212]?\$?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?(e[-+]?\d+)?\s?%?$/i;
  var MISSING = /^(-|\u2013|\u2014|nan|n\/a)$/i;

  function kind(cell) {
    var text = cell.textContent.trim();
    if (MISSING.test(text)) return "missing";
    return text && /\d/.test(text) && NUMBER.test(text) ? "number" : "text";
  }

  // [[column, cell], ...] for every row of a table section, honouring rowspan and colspan
  function grid(section) {
    var covered = [];
    return Array.prototype.map.call(section.rows, function (row) {
      var col = 0, placed = [];
      Array.prototype.forEach.call(row.cells, function (cell) {
        while (covered[col] > 0) col++;
        placed.push([col, cell]);
        for (var k = 0; k < (cell.colSpan || 1); k++) covered[col + k] = cell.rowSpan || 1;
        col += cell.colSpan || 1;
      });
      for (var c = 0; c < covered.length; c++) if (covered[c] > 0) covered[c]--;
      return placed;
    });
  }

  function alignNumbers(table) {
    var bodies = table.tBodies.length ? Array.prototype.slice.call(table.tBodies) : [table];
    var numeric = {}, hasNumber = {}, cells = [];
    bodies.forEach(function (section) {
      grid(section).forEach(function (row) {
        row.forEach(function (pair) {
          var col = pair[0], cell = pair[1];
          if (cell.tagName === "TH") return;  // a row label
          var k = kind(cell);
          cells.push(pair);
          if (k === "number") hasNumber[col] = true;
          if (k === "text") numeric[col] = false;
          else if (numeric[col] === undefined) numeric[col] = true;
        });
      });
    });
    if (table.tHead) {
      grid(table.tHead).forEach(function (row) {
        row.forEach(function (pair) { if ((pair[1].colSpan || 1) === 1) cells.push(pair); });
      });
    }
    cells.forEach(function (pair) {
      if (numeric[pair[0]] && hasNumber[pair[0]]) pair[1].classList.add("psyco-num");
    });
  }

  function run() {
    document.querySelectorAll(".bd-article table").forEach(alignNumbers);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
