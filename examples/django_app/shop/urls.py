"""The route table of examples/README.md."""

from __future__ import annotations

from django.urls import path

from shop import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("", views.index, name="index"),
    path("login", views.login, name="login"),
    path("logout", views.logout, name="logout"),
    path("cart", views.cart, name="cart"),
    path("sessions", views.sessions_page, name="sessions"),
    path("sessions/revoke-others", views.revoke_others, name="revoke_others"),
    path("api/state", views.api_state, name="api_state"),
    path("api/counter", views.api_counter, name="api_counter"),
    path("api/kv/<str:key>", views.api_kv_put, name="api_kv_put"),
    path("api/kv", views.api_kv, name="api_kv"),
    path("api/slow", views.api_slow, name="api_slow"),
    path("api/sessions", views.api_sessions, name="api_sessions"),
]
