"""The ASGI application: ``uvicorn shop.asgi:application`` from examples/django_app.

The same views; sharedsession's middleware then saves through its asyncio store.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_asgi_application()
