# Defines no `application`: loading it finds no WSGI callable.
VALUE = 1
