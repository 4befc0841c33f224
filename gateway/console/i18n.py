"""Console texts in Spanish and English (the operator's choice, kept in a cookie)."""

from __future__ import annotations

from collections.abc import Callable

TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "console": "Consola",
        "login": "Ingresar",
        "logout": "Salir",
        "username": "Usuario",
        "password": "Contraseña",
        "bad_login": "Usuario o contraseña incorrectos.",
        "locked": "Demasiados intentos fallidos. Espere {minutes} minutos e intente de nuevo.",
        "cases": "Pedidos",
        "queue": "Llamadas en espera",
        "callbacks": "Pedidos de llamada",
        "scores": "Satisfacción",
        "language": "English",
        "forbidden": "No tiene permiso para ver esto.",
        "not_found": "No encontramos ese pedido.",
        "csrf": "La sesión del formulario venció. Vuelva a intentarlo.",
        "limited": "Números limitados",
        "limited_gone": "Ese número ya no está en la lista.",
        "limited_banner": (
            "{count} número(s) superaron un límite de abuso sin un pedido al que sumar sus "
            "mensajes."
        ),
        "limit.sms_per_minute": "SMS por minuto",
        "limit.new_cases_per_day": "Pedidos nuevos por día",
        "limit.ussd_sessions_per_hour": "Sesiones USSD por hora",
        "dead_letters": "Mensajes sin guardar",
        "no_letter": "No encontramos ese mensaje.",
    },
    "en": {
        "console": "Console",
        "login": "Log in",
        "logout": "Log out",
        "username": "User name",
        "password": "Password",
        "bad_login": "Wrong user name or password.",
        "locked": "Too many failed attempts. Wait {minutes} minutes and try again.",
        "cases": "Cases",
        "queue": "Waiting calls",
        "callbacks": "Call-back requests",
        "scores": "Satisfaction",
        "language": "Español",
        "forbidden": "You are not allowed to see this.",
        "not_found": "We found no such case.",
        "csrf": "The form expired. Please try again.",
        "limited": "Limited numbers",
        "limited_gone": "That number is no longer on the list.",
        "limited_banner": (
            "{count} number(s) went over an abuse limit with no case to add their messages to."
        ),
        "limit.sms_per_minute": "SMS per minute",
        "limit.new_cases_per_day": "New cases per day",
        "limit.ussd_sessions_per_hour": "USSD sessions per hour",
        "dead_letters": "Unstored messages",
        "no_letter": "We found no such message.",
    },
}


def translator(language: str) -> Callable[..., str]:
    texts = TEXTS.get(language, TEXTS["es"])

    def t(key: str, **values: str) -> str:
        text = texts.get(key) or TEXTS["es"].get(key) or key
        return text.format(**values) if values else text

    return t
