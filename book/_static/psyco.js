// Right-aligns the numbers of every table on the page (pandas Styler, plain DataFrame and Markdown tables): a cell
// holding a number, a percentage, a count with thousands separators, an amount in dollars or a missing value ("-")
// gets the class psyco-num (styled by psyco.css); so does the header of a column whose cells are all numbers.
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
    var body = table.tBodies.length ? Array.prototype.slice.call(table.tBodies) : [table];
    var numeric = {}, seen = {};
    body.forEach(function (section) {
      Array.prototype.forEach.call(section.rows, function (row) {
        columns(row).forEach(function (pair) {
          var col = pair[0], cell = pair[1], k = kind(cell);
          if (cell.tagName === "TH") return;  // an index label
          if (k !== "text") cell.classList.add("psyco-num");
          if (k === "number") seen[col] = true;
          if (k === "text") numeric[col] = false;
          else if (numeric[col] === undefined) numeric[col] = true;
        });
      });
    });
    if (!table.tHead) return;
    var header = table.tHead.rows[table.tHead.rows.length - 1];
    columns(header).forEach(function (pair) {
      if (numeric[pair[0]] && seen[pair[0]]) pair[1].classList.add("psyco-num");
    });
  }

  function run() {
    document.querySelectorAll(".bd-article table").forEach(alignNumbers);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
  else run();
})();
