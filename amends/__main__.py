from amends.cli import app

app(prog_name="amends")
