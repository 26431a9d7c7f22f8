"""The tutorial's entry point, for PyCharm's Run button and ``python app.py``.

Runs Flask's reloading debug server on port 5000, as the tutorial's ``app.py`` does. It is for
development only: never expose the debug server; production runs ``userhub serve``.
"""

from userhub import create_app

app = create_app()

if __name__ == "__main__":
    app.run(port=5000, debug=True)
