"""The tutorial's routes (§3 and §5), each a thin call into the services.

Paths, methods, parameters and success texts are the tutorial's; the README's table of
deviations lists where the behaviour differs and why (real log-in, hashed passwords, no echoed
password, CSRF on forms).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import jsonify, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from markupsafe import escape
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Response

from ..extensions import csrf
from ..services import users
from ..web.errors import plain_text_errors
from ..web.json_bodies import json_route
from ..web.problems import Problem
from ..web.ratelimits import RATE_LIMITED, login_limit, register_limit
from ..web.rule_schemas import document_password, document_username
from .auth import render_login, submit_login_form
from .forms import LoginForm

bp = APIBlueprint(
    "tutorial",
    __name__,
    tag={"name": "Tutorial", "description": "The JSON routes of the Flask tutorial (§3, §5)."},
)

HOME_TITLE = "Hello World! Hello Flask!"
HOME_CONTENT = "This is my first flask app！"
HOME_IMAGE = "hello-flask.gif"
COMMIT_FAILED = "Commit Status:Failed, Message:"
# Translated for the reader; the OpenAPI example (built without a request) stays English.
MISSING_USER_NAME = _l("Missing query parameter user_name, e.g. /test_get?user_name=张三")
GREETING = {"message": "Success", "data": {"id": 1, "name": "Zhang San"}}


def text_response(description: str, example: str) -> Any:
    """An OpenAPI response whose body is the tutorial's bare text (Flask sends str as HTML)."""
    return {
        "description": description,
        "content": {"text/html": {"schema": {"type": "string"}, "example": example}},
    }


TEST_GET_RESPONSES: Any = {
    200: text_response("The greeting, escaped", "Hello,张三"),
    400: {
        "description": "user_name is missing or empty: plain text, or problem+json for a "
        "client that accepts only JSON",
        "content": {
            "text/plain": {"schema": {"type": "string"}, "example": str(MISSING_USER_NAME)},
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
        },
    },
}


def _non_empty(schema: dict[str, Any]) -> None:
    """Document ``user_name`` as it is checked: required and not empty."""
    schema.pop("default", None)
    schema["minLength"] = 1


class GreetingQuery(BaseModel):
    """§3's query string. Documented as required and non-empty; checked in the view, so that a
    missing or empty name gets the tutorial's plain 400 text rather than a validation document."""

    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema.__setitem__("required", ["user_name"])
    )

    user_name: str = Field(default="", examples=["张三"], json_schema_extra=_non_empty)


class Greeting(BaseModel):
    """§3's fixed JSON document."""

    class Person(BaseModel):
        id: int = Field(examples=[1])
        name: str = Field(examples=["Zhang San"])

    message: str = Field(examples=["Success"])
    data: Person


class Credentials(BaseModel):
    """The JSON body of §3's ``/get_json`` and §5's ``/save_data_to_mysql``."""

    model_config = ConfigDict(strict=True)

    username: str = Field(min_length=1, examples=["张三"])
    password: str = Field(min_length=1, examples=["a-long-password"])


class NewAccount(BaseModel):
    """§5's body: ``/get_json``'s two fields, documented with the rules of a new account.

    The service checks the rules and words the errors (in the tutorial's ``Commit Status``
    form); the schema only states them, so Pydantic checks presence and type, as for §3."""

    model_config = ConfigDict(strict=True)

    username: str = Field(min_length=1, examples=["张三"], json_schema_extra=document_username)
    password: str = Field(
        min_length=1, examples=["a-long-password"], json_schema_extra=document_password
    )


@bp.get("/")
@bp.doc(hide=True)
def index() -> str:
    """§3: the templated home page with an image from /static/."""
    return render_template(
        "index.html",
        title=HOME_TITLE,
        content=HOME_CONTENT,
        image_url=url_for("static", filename=HOME_IMAGE),
    )


@bp.get("/test_get")
@plain_text_errors
@bp.input(GreetingQuery, location="query")
@bp.doc(summary="Greet by query parameter (§3)", responses=TEST_GET_RESPONSES)
def test_get(query_data: GreetingQuery) -> str:
    """§3: ``?user_name=张三`` → ``Hello,张三`` (escaped: a name is text, never markup)."""
    user_name = query_data.user_name
    if not user_name:
        raise Problem(400, str(MISSING_USER_NAME))
    return "Hello," + escape(user_name)


@bp.get("/login")
@bp.doc(hide=True)
def login() -> tuple[str, int]:
    """§3: the log-in form, posting to /test_post."""
    form = LoginForm(next=request.args.get("next", ""))
    return render_login(form)


@bp.post("/test_post")
@login_limit
@bp.doc(hide=True)
def test_post() -> Any:
    """§3: the form's target: check the password, start a session, redirect to /success."""
    return submit_login_form()


@bp.get("/success")
@bp.doc(hide=True)
@login_required
def success() -> str:
    """§3: greet the logged-in user (the name in the URL is ignored: identity is the session)."""
    return render_template("success.html", name=current_user.username)


@bp.route("/test_request", methods=["GET", "POST"])
@login_limit
@bp.doc(hide=True)
def test_request() -> Response | tuple[str, int]:
    """§3: one view, two methods: GET goes to the form, POST logs in like /test_post."""
    if request.method == "GET":
        return redirect(url_for("tutorial.login"))
    return submit_login_form()


@bp.post("/get_json")
@csrf.exempt
@json_route()
@bp.input(Credentials)
@bp.doc(
    summary="Receive JSON (§3)",
    responses={
        200: text_response("Received; the password is never echoed", "Data received. username:张三")
    },
)
def get_json(json_data: Credentials) -> str:
    """§3: read a JSON body. The password is checked for presence but never echoed."""
    return "Data received. username:" + escape(json_data.username)


@bp.get("/response_json")
@json_route()
@bp.output(Greeting, description="The tutorial's fixed document")
@bp.doc(summary="Send JSON (§3)")
def response_json() -> Response:
    """§3: a fixed JSON document, as the tutorial's ``jsonify`` example.

    Returned as a ready response, so APIFlask does not re-validate a constant against
    ``Greeting`` on every request (the schema documents it; the contract tests check it)."""
    return jsonify(GREETING)


@bp.post("/save_data_to_mysql")
@register_limit
@csrf.exempt
@json_route(detail_prefix=COMMIT_FAILED)
@bp.input(NewAccount)
@bp.doc(
    summary="Save a user into MySQL (§5)",
    responses={
        200: text_response(
            "Committed; the password is stored as an argon2id hash",
            "Commit Status:Succeeded, Message:Data inserted successfully.",
        ),
        409: COMMIT_FAILED + "Username already exists.",
        429: RATE_LIMITED,
    },
)
def save_data_to_mysql(json_data: NewAccount) -> str:
    """§5: create a user (password hashed); the database decides duplicates."""
    users.register_user(json_data.username, json_data.password)
    return "Commit Status:Succeeded, Message:Data inserted successfully."
