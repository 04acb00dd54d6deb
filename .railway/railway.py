"""studio on Railway: the web service, PostgreSQL and Redis, as Railway's Infrastructure as Code.

Railway's CLI reads this file: `railway config plan` shows what it would change in the
linked project, `railway config apply` makes the change (README, "Deploying on Railway").
It replaces `railway.json`, which Railway no longer reads. The CLI runs it with `python3`,
which must be able to import `railway_sdk` (pinned in requirements-dev.txt).

The commands are the Procfile's (tests/test_deploy_files.py holds them equal): Railway runs
the pre-deploy command, the migrations, in a container of its own before each deployment
and starts the new deployment only if it succeeded; traffic moves to the new one once
/health/ready answers 200, that is once it reaches the database.
"""

from railway_sdk import define_railway, postgres, preserve, project, redis, service

RELEASE_COMMAND = "flask --app wsgi db upgrade"
START_COMMAND = "gunicorn wsgi:app"


@define_railway
def main(ctx=None):
    """Return the project: PostgreSQL and Redis, and studio wired to them."""
    database = postgres("Postgres")
    cache = redis("Redis")
    web = service(
        "studio",
        # gunicorn binds Railway's $PORT; gunicorn.conf.py sets everything else.
        start=START_COMMAND,
        preDeploy=RELEASE_COMMAND,
        healthcheck="/health/ready",
        # Seconds the new deployment has to answer 200 (Railway's default is 300).
        healthcheckTimeout=120,
        deploy={
            "restartPolicyType": "ON_FAILURE",
            "restartPolicyMaxRetries": 10,
            # The old deployment gets SIGTERM, then this long to finish the requests it
            # holds (gunicorn's graceful timeout) before Railway kills it.
            "drainingSeconds": 30,
        },
        env={
            "DATABASE_URL": database.env.DATABASE_URL,
            "REDIS_URL": cache.env.REDIS_URL,
            "ALLOWED_HOSTS": "${{RAILWAY_PUBLIC_DOMAIN}}",
            # Set by hand once (README); kept as it is by every apply, never written here.
            "SECRET_KEY": preserve(),
        },
    )
    return project("studio", resources=[database, cache, web])
