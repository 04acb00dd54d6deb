"""The benchmark's scenarios, one locust user class each; bench.run picks one per run.

Run by `python -m bench.run`, which passes a JSON file in BENCH_CONFIG (token, paint ids,
brands and search words) and the warm-up in BENCH_WARMUP seconds. Every user sends its
next request as soon as the last one is answered, so `-u` is the number of concurrent
clients. Statistics are reset when the warm-up ends, so the CSV holds only the measured
part; the lines "BENCH measuring" and "BENCH stopping" mark that window for bench.run.
"""

import json
import os
import random
from pathlib import Path
from urllib.parse import quote_plus

import gevent
from locust import FastHttpUser, constant, events, task

CONFIG = (
    json.loads(Path(os.environ["BENCH_CONFIG"]).read_text()) if "BENCH_CONFIG" in os.environ else {}
)
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP", "0"))
LIST_SORTS = ("-price", "name", "-created_at")
LIST_STATUSES = ("in_stock", "low_stock", "out_of_stock")
LIST_PAGES = (1, 2, 3)


@events.test_start.add_listener
def start_warm_up(environment, **kwargs):
    gevent.spawn(end_warm_up, environment)


def end_warm_up(environment):
    gevent.sleep(WARMUP_SECONDS)
    environment.stats.reset_all()
    print("BENCH measuring", flush=True)


@events.test_stopping.add_listener
def mark_stop(environment, **kwargs):
    print("BENCH stopping", flush=True)


class ApiUser(FastHttpUser):
    """A script using studio's API with its bearer token, without pause."""

    abstract = True
    wait_time = constant(0)

    def on_start(self):
        self.auth = {"Authorization": f"Bearer {CONFIG['token']}"}

    def get(self, path, name):
        self.client.get(path, headers=self.auth, name=name)

    def random_paint(self):
        return random.randint(CONFIG["first_id"], CONFIG["last_id"])

    def detail(self):
        self.get(f"/api/v1/paints/{self.random_paint()}", "detail")

    def filtered_list(self):
        query = (
            f"brand={random.choice(CONFIG['brands'])}&stock={random.choice(LIST_STATUSES)}"
            f"&sort={random.choice(LIST_SORTS)}&page={random.choice(LIST_PAGES)}"
        )
        self.get(f"/api/v1/paints?{query}", "list")

    def search(self):
        self.get(f"/api/v1/paints?q={random.choice(CONFIG['search_terms'])}", "search")

    def stats(self):
        self.get("/api/v1/stats", "stats")


class HelloWorld(FastHttpUser):
    wait_time = constant(0)

    @task
    def hello(self):
        self.client.get("/", name="hello")


class PaintDetail(ApiUser):
    """One paint by id, uniformly over every seeded paint."""

    @task
    def get_detail(self):
        self.detail()


class HotPaintDetail(ApiUser):
    """One paint by id out of a fixed hot set (bench.run draws it), as shop traffic is."""

    @task
    def get_detail(self):
        self.get(f"/api/v1/paints/{random.choice(CONFIG['hot_ids'])}", "detail")


class FilteredList(ApiUser):
    """A page of one brand in one stock state, in one of three orders."""

    @task
    def get_list(self):
        self.filtered_list()


class Search(ApiUser):
    """A search for one colour word or adjective (each matches many paints)."""

    @task
    def get_search(self):
        self.search()


class CodeSearch(ApiUser):
    """A fragment of a paint's code, as read off a worn label: 4-6 digits, maybe a prefix."""

    @task
    def get_code_search(self):
        number = f"{self.random_paint():06d}"
        length = random.randint(4, 6)
        start = random.randint(0, 6 - length)
        fragment = number[start : start + length]
        if random.random() < 0.5:
            fragment = random.choice(CONFIG["code_prefixes"]) + number[:length]
        self.get(f"/api/v1/paints?q={quote_plus(fragment)}", "code search")


class NamePrefixSearch(ApiUser):
    """The start of two words of a name, as an admin types them ("dar bon")."""

    @task
    def get_name_search(self):
        words = (random.choice(CONFIG["adjectives"]), random.choice(CONFIG["colour_names"]))
        q = " ".join(word[: random.randint(3, 4)] for word in words)
        self.get(f"/api/v1/paints?q={quote_plus(q)}", "name search")


class Stats(ApiUser):
    """The inventory figures."""

    @task
    def get_stats(self):
        self.stats()


class ReadWriteMix(ApiUser):
    """90 % reads (detail 60, list 10, search 10, stats 10) and 10 % stock adjustments."""

    @task(60)
    def get_detail(self):
        self.detail()

    @task(10)
    def get_list(self):
        self.filtered_list()

    @task(10)
    def get_search(self):
        self.search()

    @task(10)
    def get_stats(self):
        self.stats()

    @task(10)
    def adjust_stock(self):
        self.client.post(
            f"/api/v1/paints/{self.random_paint()}/stock",
            json={"delta": 1, "reason": "bench"},
            headers=self.auth,
            name="stock",
        )


class DetailWriteMix(ApiUser):
    """90 % paint detail (any id) and 10 % stock adjustments: writes without listings."""

    @task(90)
    def get_detail(self):
        self.detail()

    @task(10)
    def adjust_stock(self):
        ReadWriteMix.adjust_stock(self)
