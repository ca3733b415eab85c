"""The column mix used by the detection tests and the benchmark: 20 numerical features of four
kinds (normal, lognormal amounts, Poisson counts with heavy ties, a zero-inflated amount) and 5
categorical ones with unequal shares. One definition, so the benchmark measures what the tests
validate."""

NORMALS = {f"normal_{i}": (10.0 * i, 1.0 + i) for i in range(8)}  # mean, sd
AMOUNTS = {f"amount_{i}": (3.0 + 0.2 * i, 0.8 + 0.1 * i) for i in range(5)}  # lognormal mu, sigma
COUNTS = {f"count_{i}": lam for i, lam in enumerate([0.5, 1.0, 2.0, 3.0, 5.0, 8.0])}  # Poisson
ZERO_INFLATED = "refund_amount"  # 40% exact zeros, else lognormal(2, 1)
CATEGORIES = {
    "channel": [0.5, 0.3, 0.2],
    "merchant_type": [0.4, 0.25, 0.15, 0.1, 0.1],
    "country": [0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.05],
    "device": [0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04],
    "card_type": [0.6, 0.25, 0.15],
}
NUMERICAL = [*NORMALS, *AMOUNTS, *COUNTS, ZERO_INFLATED]
CATEGORICAL = list(CATEGORIES)
