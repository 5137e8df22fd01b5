# A minimal but real Django project in one module, served by both uwsgi-rs and real
# uWSGI 2.0 behind nginx in the interop test server/tests/nginx_django.rs: the same
# requests go to both servers and the answers are compared.
#
# Loaded with `--module django_app` (tests/peers on the Python path), so that this module
# is also the URLconf. Settings are given in code (no settings file, no database).
#
# Routes: an HTML page rendered by a template, a form with Django's CSRF token flow
# (GET sets the cookie and the hidden field, POST checks both), a JSON echo of a posted
# body (CSRF exempt), a JSON round trip through the `uwsgi` module's cache (imported
# guarded: Django itself does not need it), APPEND_SLASH's redirect, Django's 404 page,
# and a view that raises (Django's 500 page; the traceback goes to stderr via LOGGING).
import json
import sys

import django
from django.conf import settings

try:
    import uwsgi
except ImportError:
    uwsgi = None

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="uwsgi-rs interop test: not a secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        DATABASES={},
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ],
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        USE_TZ=True,
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "stream": sys.stderr}
            },
            "loggers": {
                "django.request": {"handlers": ["stderr"], "level": "ERROR"}
            },
        },
    )
    django.setup()

from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.template import engines  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_POST  # noqa: E402

PAGE = engines["django"].from_string(
    "<!doctype html>\n<html><head><title>{{ title }}</title></head><body>\n"
    "<h1>{{ title }}</h1>\n"
    "<p>method={{ method }} path={{ path }} scheme={{ scheme }} proto={{ proto }}</p>\n"
    "<ul>{% for k, v in params %}<li>{{ k }}={{ v }}</li>{% endfor %}</ul>\n"
    "<p>x-test={{ x_test }} script_name={{ script_name }}</p>\n"
    "</body></html>\n"
)

FORM = engines["django"].from_string(
    '<form method="post" action="/form/">'
    '<input type="hidden" name="csrfmiddlewaretoken" value="{{ token }}">'
    '<input name="name"></form>\n'
)


def index(request):
    html = PAGE.render(
        {
            "title": "hello from django & uwsgi",
            "method": request.method,
            "path": request.get_full_path(),
            "scheme": request.scheme,
            "proto": request.META.get("SERVER_PROTOCOL"),
            "params": sorted(request.GET.items()),
            "x_test": request.headers.get("X-Test", ""),
            "script_name": request.META.get("SCRIPT_NAME", ""),
        }
    )
    return HttpResponse(html)


def form(request):
    if request.method == "POST":
        return JsonResponse({"fields": request.POST.dict()})
    return HttpResponse(FORM.render({"token": get_token(request)}))


@csrf_exempt  # an API endpoint: no CSRF token flow
@require_POST
def echo(request):
    body = request.body
    return JsonResponse(
        {
            "length": len(body),
            "content_type": request.content_type,
            "json": json.loads(body) if body else None,
        }
    )


def cache_roundtrip(request, key):
    if uwsgi is None:
        return JsonResponse({"uwsgi": False}, status=501)
    value = request.GET.get("value", "").encode()
    uwsgi.cache_update(key, value)
    got = uwsgi.cache_get(key)
    return JsonResponse(
        {"uwsgi": True, "key": key, "stored": got.decode() if got is not None else None}
    )


def boom(request):
    raise RuntimeError("boom: a Django view error the test expects")


urlpatterns = [
    path("", index),
    path("hello/", index),
    path("form/", form),
    path("echo/", echo),
    path("cache/<str:key>/", cache_roundtrip),
    path("boom/", boom),
]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
