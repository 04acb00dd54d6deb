from studio import create_app

app = create_app()
