"""The framework's floor: a bare Flask "hello" page, served the same way as the portal."""
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    """The smallest page Flask can serve."""
    return "Hello, World!"
