import typer
def test_x():
    from spikewatch.cli import app
    c = typer.main.get_command(app)
    print("DBG", type(c), getattr(c, "commands", None), app.registered_commands)
