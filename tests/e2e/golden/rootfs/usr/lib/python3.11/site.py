# site.py stand-in
