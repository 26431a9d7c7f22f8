"""The tutorial's entry point, for PyCharm's Run button and ``python app.py``.

Brings the database schema up to date (as ``make dev`` does), starts the mail sender (account
mail lands in ``instance/mail/``), then runs Flask's reloading debug server on port 5000, as the
tutorial's ``app.py`` does. For development only: never expose the debug server; production
runs ``userhub serve``.
"""

from flask_migrate import upgrade

from userhub import create_app
from userhub.services import mail_sender

app = create_app()

if __name__ == "__main__":
    with app.app_context():
        upgrade()  # safe to repeat: does nothing when the schema is current
    mail_sender.start(app)  # account mail into instance/mail/, as userhub serve sends it
    app.run(port=5000, debug=True)
