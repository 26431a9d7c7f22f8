"""The tutorial's routes (§3 and §5), each a thin call into the services.

Paths, methods, parameters and success texts are the tutorial's; DESIGN.md lists where the
behaviour differs and why (real log-in, hashed passwords, no echoed password, CSRF on forms).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import escape
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.wrappers import Response

from . import users
from .auth import render_login, submit_login_form
from .errors import Problem, json_route
from .extensions import csrf
from .forms import LoginForm, LogoutForm

bp = APIBlueprint("tutorial", __name__, tag="Tutorial")

HOME_TITLE = "Hello World! Hello Flask!"
HOME_CONTENT = "This is my first flask app！"
HOME_IMAGE = "hello-flask.gif"
COMMIT_FAILED = "Commit Status:Failed, Message:"


class Credentials(BaseModel):
    """The JSON body of §3's ``/get_json`` and §5's ``/save_data_to_mysql``."""

    model_config = ConfigDict(strict=True)

    username: str = Field(min_length=1, examples=["张三"])
    password: str = Field(min_length=1, examples=["a-long-password"])


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
@bp.doc(summary="Greet by query parameter", responses={200: "Hello,<user_name>", 400: "Missing"})
def test_get() -> str:
    """§3: ``?user_name=张三`` → ``Hello,张三`` (escaped: a name is text, never markup)."""
    user_name = request.args.get("user_name", "")
    if not user_name:
        raise Problem(400, "Missing query parameter user_name, e.g. /test_get?user_name=张三")
    return "Hello," + escape(user_name)


@bp.get("/login")
@bp.doc(hide=True)
def login() -> tuple[str, int]:
    """§3: the log-in form, posting to /test_post."""
    form = LoginForm(next=request.args.get("next", ""))
    return render_login(form)


@bp.post("/test_post")
@bp.doc(hide=True)
def test_post() -> Any:
    """§3: the form's target: check the password, start a session, redirect to /success."""
    return submit_login_form()


@bp.get("/success")
@bp.doc(hide=True)
@login_required
def success() -> str:
    """§3: greet the logged-in user (the name in the URL is ignored: identity is the session)."""
    return render_template("success.html", name=current_user.username, logout_form=LogoutForm())


@bp.route("/test_request", methods=["GET", "POST"])
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
@bp.doc(summary="Receive JSON", responses={200: "Data received. username:<username>"})
def get_json(json_data: Credentials) -> str:
    """§3: read a JSON body. The password is checked for presence but never echoed."""
    return "Data received. username:" + escape(json_data.username)


@bp.get("/response_json")
@json_route()
@bp.doc(summary="Send JSON")
def response_json() -> dict[str, Any]:
    """§3: a fixed JSON document, as the tutorial's ``jsonify`` example."""
    return {"message": "Success", "data": {"id": 1, "name": "Zhang San"}}


@bp.post("/save_data_to_mysql")
@csrf.exempt
@json_route(detail_prefix=COMMIT_FAILED)
@bp.input(Credentials)
@bp.doc(summary="Save a user", responses={200: "Commit Status:Succeeded, ...", 409: "Taken"})
def save_data_to_mysql(json_data: Credentials) -> str:
    """§5: create a user (password hashed); the database decides duplicates."""
    try:
        users.register_user(json_data.username, json_data.password)
    except users.UsernameTaken as exc:
        raise Problem(409, exc.message, errors=exc.errors) from exc
    except users.UserError as exc:
        raise Problem(422, exc.message, errors=exc.errors) from exc
    return "Commit Status:Succeeded, Message:Data inserted successfully."
