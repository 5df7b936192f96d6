"""Editor support: the Pygments lexer, the TextMate grammar and the language server (`kyic lsp`).

Everything here reads the compiler's own tables (kokoyi.compiler.keywords and
kokoyi.compiler.builtins), so a word added to the language is highlighted and completed
without being retyped.
"""
