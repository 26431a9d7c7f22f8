"""The HTML pages: the tutorial's routes and the accounts in the browser."""
