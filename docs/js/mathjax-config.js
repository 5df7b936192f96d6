// MathJax 3 settings for the kokoyi site (loaded before js/mathjax/tex-chtml.js).
// Only what pymdownx.arithmatex and scripts/mkdocs_hooks.py mark with the class
// `arithmatex` is typeset: code blocks that show Kokoyi source stay source.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
