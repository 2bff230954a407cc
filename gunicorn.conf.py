# gunicorn reads ./gunicorn.conf.py on its own (the Dockerfile's, Procfile's and CI's command
# lines run from the project root): settings that hold for every way we start it.
# Secrets (a licence key in `?key=`, ...) are redacted from the access and error logs.
logger_class = "revenue_site.gunicorn_logging.RedactingLogger"
