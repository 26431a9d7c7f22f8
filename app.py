"""The tutorial's entry point, for PyCharm's Run button and ``python app.py``.

Brings the database schema up to date (as ``make dev`` does), then runs Flask's reloading debug
server on port 5000, as the tutorial's ``app.py`` does. For development only: never expose the
debug server; production runs ``userhub serve``.
"""

from flask_migrate import upgrade

from userhub import create_app

app = create_app()

if __name__ == "__main__":
    with app.app_context():
        upgrade()  # safe to repeat: does nothing when the schema is current
    app.run(port=5000, debug=True)
