"""The paper (paper/, docs/paper.md): the numbers its text reads (variables.py), the tables its figures
read (figures.py), both written by the `paper` DVC stage (build.py); the checks of its sources that need
no Quarto (check.py); the figures as self-contained HTML files (bundle.py)."""
