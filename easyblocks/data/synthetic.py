"""Deterministic synthetic Taobao-display-ad-like CTR/CVR data.

Rows follow the column layout of Alibaba EasyRec's Taobao samples (headerless
CSV, 20 columns, see ``COLUMNS``). The data is drawn from a small simulated
"world" with planted, learnable structure:

* Users and ads live in a shared latent taste space (``LATENT_DIM``). An ad's
  vector is a mix of its category's vector, its brand's vector and its own
  noise, so ``cate_id`` and ``brand`` carry signal on their own.
* A user's latent vector is a sum of embeddings of the profile columns plus
  individual noise, so the profile carries signal for cold users.
* ``tag_category_list`` / ``tag_brand_list`` are the user's recent
  categories / brands, drawn per impression from the user's preferences; an ad
  whose category / brand is among them gets a short-term-intent bonus.
* ``price`` is ad-dependent; clicks are mildly and buys strongly
  price-sensitive (less so for users with a high ``pvalue_level``).
* Three ``pid`` scenarios of very different sizes each re-weight a different
  slice of the user-ad affinity and have their own bias, price sensitivity and
  profile interaction, so knowing the domain helps.
* User activity is heavy-tailed: a few users appear often, most rarely.
* ``buy`` happens only after ``clk``, from a separate, correlated conversion
  logit.

Next to each CSV an ``.oracle.csv`` holds the true ``p_clk`` and
``p_buy = p_clk * p(buy | clk)`` of every row, for oracle AUCs.

Usage::

    python -m easyblocks.data.synthetic --out samples/data \
        --train_rows 200000 --test_rows 50000 --seed 2024
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np

from easyblocks.eval.metrics import auc  # noqa: F401  (re-exported: synthetic.auc)

COLUMNS: list[str] = [
    "clk", "buy", "pid", "adgroup_id", "cate_id", "campaign_id", "customer",
    "brand", "user_id", "cms_segid", "cms_group_id", "final_gender_code",
    "age_level", "pvalue_level", "shopping_level", "occupation",
    "new_user_class_level", "tag_category_list", "tag_brand_list", "price",
]

LATENT_DIM = 8
AFFINITY = 1.2  # weight of the user . ad latent affinity in the click logit
# Scenario (domain) ids and their share of impressions.
PIDS: list[str] = ["430548_1007", "430539_1007", "430544_1007"]
PID_SHARE = np.array([0.6, 0.3, 0.1])
# Each scenario weights a different slice of the latent affinity; the mean
# over scenarios is 1, the shared part.
PID_LATENT_WEIGHT = np.array([
    [1.6, 1.6, 1.6, 1.6, 0.4, 0.4, 0.4, 0.4],
    [0.4, 0.4, 0.4, 0.4, 1.6, 1.6, 1.6, 1.6],
    [0.4, 0.4, 1.6, 1.6, 1.6, 1.6, 0.4, 0.4],
])
PID_CLK_BIAS = np.array([-3.15, -2.85, -2.55])
PID_BUY_BIAS = np.array([-2.1, -2.0, -1.6])
PID_PRICE_SENS = np.array([0.15, 0.10, 0.45])  # extra click price sensitivity
PID_GENDER_WEIGHT = np.array([0.0, 1.0, 0.0])  # gender x category lean
PID_AGE_WEIGHT = np.array([0.0, 0.0, 1.0])  # age x category lean

# Profile columns: number of levels and the first level's value in the CSV.
PROFILE_LEVELS = {
    "cms_segid": (13, 0),
    "final_gender_code": (2, 1),
    "age_level": (7, 0),
    "pvalue_level": (4, 0),  # 0 = unknown, 1..3 = low..high consumption
    "shopping_level": (3, 1),
    "occupation": (2, 0),  # 1 = college student
    "new_user_class_level": (4, 1),  # city tier
}


@dataclass
class Impressions:
    """Index arrays describing sampled impressions (one entry per row)."""

    user: np.ndarray  # (N,) user index
    ad: np.ndarray  # (N,) ad index
    pid: np.ndarray  # (N,) scenario index
    tag_cates: np.ndarray  # (N, 5) recent category indices, -1 = padding
    tag_brands: np.ndarray  # (N, 5) recent brand indices, -1 = padding
    cate_hit: np.ndarray  # (N,) ad category is among the recent categories
    brand_hit: np.ndarray  # (N,) ad brand is among the recent brands
    time: np.ndarray | None = None  # (N,) impression time (worlds with ad_lifetime)


def _id_tokens(n: int, rng: np.random.Generator, start: int) -> np.ndarray:
    """Shuffled integer id strings, so that id order leaks nothing."""
    return (rng.permutation(n) + start).astype(str).astype(object)


def _join_tags(idx: np.ndarray, tokens: np.ndarray) -> list[str]:
    """Joins each row's valid (non -1) item tokens with ``|``."""
    tok = np.append(tokens, "")[idx]  # -1 picks the empty padding token
    return ["|".join(t for t in r if t) for r in tok.tolist()]


def _top_candidates(user_vec: np.ndarray, item_vec: np.ndarray,
                    pop: np.ndarray, m: int, chunk: int = 4_096,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ``m`` best items by ``log(pop) + 2 * user . item / sqrt(d)``.

    Returns:
        (U, m) item indices and their (U, m) logits.
    """
    scale = 2.0 / np.sqrt(LATENT_DIM)
    idx = np.empty((len(user_vec), m), dtype=np.int64)
    val = np.empty((len(user_vec), m))
    for s in range(0, len(user_vec), chunk):
        uvec = user_vec[s:s + chunk]
        # Explicit sum over latent dims instead of a BLAS matmul, so the
        # result (and hence the data) does not depend on the CPU/BLAS.
        logits = np.broadcast_to(np.log(pop), (len(uvec), len(pop))).copy()
        for j in range(LATENT_DIM):
            logits += scale * uvec[:, j:j + 1] * item_vec[:, j]
        part = np.argpartition(-logits, m - 1, axis=1)[:, :m]
        idx[s:s + chunk] = part
        val[s:s + chunk] = np.take_along_axis(logits, part, axis=1)
    return idx, val


class TaobaoWorld:
    """A fixed simulated world of users, ads and click/buy parameters.

    Train and test sets must be sampled from the same world so that users, ads
    and parameters are shared; only the impression rng differs.

    The keyword parameters change the world's structure (their defaults make the shipped
    data); benchmarks use them to make data sets nobody tuned for.

    Args:
        seed: Seed of the world (entities and parameters).
        num_users: Number of users.
        num_ads: Number of ads (adgroups).
        user_activity_sigma: Log-normal sigma of the users' activity: larger gives a longer
            tail of users seen once or twice.
        ad_popularity_sigma: Log-normal sigma of the ads' exposure share (the same for ads).
        user_taste_noise: Standard deviation of the individual part of a user's taste (the
            rest comes from the profile): larger makes ``user_id`` matter more.
        pid_share: Share of impressions of each of the three scenarios (default 0.6, 0.3,
            0.1).
        ad_lifetime: None: impressions have no time. Else each ad is shown only during a
            window of this length on a time axis where the training period is [0, 1)
            (launch times uniform), and the scenario mix drifts from ``pid_share`` at time 0
            to its reverse at time 1; see ``draw(..., time_range=...)``.
    """

    def __init__(self, seed: int = 2024, num_users: int | None = None,
                 num_ads: int | None = None, *, user_activity_sigma: float = 1.4,
                 ad_popularity_sigma: float = 1.0, user_taste_noise: float = 0.75,
                 pid_share: list[float] | None = None,
                 ad_lifetime: float | None = None) -> None:
        rng = np.random.default_rng(seed)
        d = LATENT_DIM
        self.num_users = num_users or 40_000
        self.num_ads = num_ads or 6_000
        share = np.asarray(PID_SHARE if pid_share is None else pid_share, dtype=np.float64)
        if share.shape != (len(PIDS),) or np.any(share < 0) or share.sum() <= 0:
            raise ValueError(f"pid_share: expected {len(PIDS)} non-negative shares, "
                             f"received {pid_share}")
        self.pid_share = share / share.sum()
        nc, nb = 120, 1_000  # categories, brands
        ncust, ncamp = 800, 3_000  # customers, campaigns

        # --- Categories and brands. Popularity is Zipf-like. ---
        self.cate_vec = rng.normal(size=(nc, d))
        self.cate_pop = 1.0 / np.arange(1, nc + 1) ** 0.9
        self.cate_pop /= self.cate_pop.sum()
        self.cate_gender = rng.normal(0, 0.5, nc)  # >0: leans to gender 2
        self.cate_age = rng.normal(0, 0.4, nc)  # >0: leans to older users
        self.cate_logprice = rng.normal(4.0, 0.8, nc)
        brand_cate = rng.choice(nc, nb, p=self.cate_pop)
        self.brand_vec = 0.5 * self.cate_vec[brand_cate] + rng.normal(
            0, 0.9, (nb, d))
        self.brand_pop = rng.pareto(1.5, nb) + 0.1
        self.brand_pop /= self.brand_pop.sum()
        brand_customer = rng.integers(0, ncust, nb)
        camp_customer = rng.integers(0, ncust, ncamp)
        self.camp_bias = rng.normal(0, 0.3, ncamp)  # campaign creative quality

        # --- Ads: category -> brand of that category -> customer -> campaign.
        ad_cate = rng.choice(nc, self.num_ads, p=self.cate_pop)
        ad_brand = np.empty(self.num_ads, dtype=np.int64)
        for c in range(nc):
            idx = np.flatnonzero(ad_cate == c)
            pool = np.flatnonzero(brand_cate == c)
            if pool.size == 0:  # rare tiny category: give it a global brand
                pool = np.arange(nb)
            p = self.brand_pop[pool] / self.brand_pop[pool].sum()
            ad_brand[idx] = rng.choice(pool, idx.size, p=p)
        ad_customer = brand_customer[ad_brand]
        ad_camp = np.empty(self.num_ads, dtype=np.int64)
        for i, cust in enumerate(ad_customer):
            camps = np.flatnonzero(camp_customer == cust)
            ad_camp[i] = rng.choice(camps) if camps.size else rng.integers(ncamp)
        self.ad_cate, self.ad_brand, self.ad_camp = ad_cate, ad_brand, ad_camp
        self.ad_customer = ad_customer
        # Ad latent vector: partly shared with its category and brand.
        self.ad_vec = (0.6 * self.cate_vec[ad_cate] + 0.5 * self.brand_vec[
            ad_brand] + 0.6 * rng.normal(size=(self.num_ads, d)))
        self.ad_bias = self.camp_bias[ad_camp] + rng.normal(0, 0.2,
                                                            self.num_ads)
        logprice = self.cate_logprice[ad_cate] + rng.normal(0, 0.5,
                                                            self.num_ads)
        self.ad_price = np.clip(np.round(np.exp(logprice)), 1, 99_999).astype(
            np.int64)
        self.ad_zprice = (logprice - 4.0) / 0.9  # standardized log price
        self.ad_pop = rng.lognormal(0, ad_popularity_sigma, self.num_ads)  # exposure
        self.ad_pop /= self.ad_pop.sum()
        # Conversion latent vector: partly shared with the click one.
        self.ad_cvec = 0.5 * self.ad_vec + rng.normal(0, 0.8,
                                                      (self.num_ads, d))

        # --- Users: profile first, latent taste derived from it. ---
        nu = self.num_users
        prof: dict[str, np.ndarray] = {}
        prof["final_gender_code"] = (rng.random(nu) < 0.65).astype(np.int64)
        prof["age_level"] = rng.choice(7, nu, p=[.02, .12, .3, .28, .17, .08,
                                                 .03])
        prof["pvalue_level"] = rng.choice(4, nu, p=[.3, .15, .45, .1])
        prof["shopping_level"] = rng.choice(3, nu, p=[.05, .15, .8])
        prof["occupation"] = (rng.random(nu) < 0.06 + 0.15 * (
            prof["age_level"] <= 2)).astype(np.int64)
        prof["new_user_class_level"] = rng.choice(4, nu, p=[.1, .4, .3, .2])
        prof["cms_segid"] = np.where(rng.random(nu) < 0.7, 0,
                                     rng.integers(1, 13, nu))
        self.profile = prof
        # cms_group_id is derived from gender and age like in the real data.
        self.cms_group = prof["final_gender_code"] * 7 + prof["age_level"]
        # Each profile value has an embedding; users' tastes are their sum plus
        # individual noise (profile explains roughly half of the variance).
        u = rng.normal(0, user_taste_noise, (nu, d))
        for name, (levels, _) in PROFILE_LEVELS.items():
            emb = rng.normal(0, 0.3, (levels, d))
            u += emb[prof[name]]
        u += rng.normal(0, 0.4, (14, d))[self.cms_group]
        self.user_vec = u
        self.user_bias = rng.normal(0, 0.3, nu) + 0.15 * (
            prof["shopping_level"] - 2)
        self.user_cvec = 0.5 * u + rng.normal(0, 0.8, (nu, d))
        # Price sensitivity: high consumption level and non-students care less.
        pv = prof["pvalue_level"]
        self.user_price_sens = np.where(pv == 0, 1.0, 1.5 - 0.4 * (pv - 1)) + \
            0.4 * prof["occupation"]
        # Heavy-tailed activity; more active shoppers appear more often.
        act = rng.lognormal(0, user_activity_sigma, nu) * 1.4 ** prof["shopping_level"]
        self.user_act = act / act.sum()

        # Candidates for the recent-behaviour tag lists: each user's top
        # categories / brands by popularity and taste.
        self.cate_cand = _top_candidates(u, self.cate_vec, self.cate_pop, 40)
        self.brand_cand = _top_candidates(u, self.brand_vec, self.brand_pop,
                                          60)

        # --- Tokens written to the CSV. ---
        self.user_tok = _id_tokens(nu, rng, 1)
        self.ad_tok = _id_tokens(self.num_ads, rng, 1)
        self.cate_tok = _id_tokens(nc, rng, 1)
        self.brand_tok = _id_tokens(nb, rng, 1)
        self.cust_tok = _id_tokens(ncust, rng, 1)
        self.camp_tok = _id_tokens(ncamp, rng, 1)

        # --- Time (only with ad_lifetime; its own stream keeps the rest unchanged). ---
        self.ad_lifetime = ad_lifetime
        if ad_lifetime is not None:
            if not ad_lifetime > 0:
                raise ValueError(f"ad_lifetime: expected > 0, received {ad_lifetime}")
            trng = np.random.default_rng([seed, 99])
            # launches cover the training period [0, 1) and a later test period
            self.ad_launch = trng.uniform(-ad_lifetime, 1.5, self.num_ads)

    def _recent(self, user: np.ndarray, cand: np.ndarray,
                cand_logit: np.ndarray, rng: np.random.Generator,
                ) -> np.ndarray:
        """Per row, 1-5 distinct recent items drawn from the user's taste.

        Gumbel-top-k over the user's candidate items samples without
        replacement from ``softmax(cand_logit)``, i.e. mostly liked items.

        Returns:
            (N, 5) item indices (in sampled order), -1 as padding.
        """
        n = user.size
        k = 1 + rng.binomial(4, 0.35, n)
        logits = cand_logit[user] + rng.gumbel(size=(n, cand.shape[1]))
        pos = np.argsort(-logits, axis=1)[:, :5]
        top = np.take_along_axis(cand[user], pos, axis=1)
        top[np.arange(5) >= k[:, None]] = -1
        return top

    def draw(self, num_rows: int, rng: np.random.Generator,
             time_range: tuple[float, float] | None = None) -> Impressions:
        """Draws impressions (who sees which ad, where, with what history).

        Args:
            num_rows: Number of impressions.
            rng: Random generator of this sample.
            time_range: With ``ad_lifetime``: impressions at times uniform in this range,
                returned in time order (``Impressions.time``), each showing an ad live at
                its time, with the scenario mix of its time. Default (0, 1).

        Returns:
            The sampled impressions.
        """
        user = rng.choice(self.num_users, num_rows, p=self.user_act)
        if self.ad_lifetime is None:
            ad = rng.choice(self.num_ads, num_rows, p=self.ad_pop)
            pid = rng.choice(len(PIDS), num_rows, p=self.pid_share)
            time = None
        else:
            ad, pid, time = self._draw_timed(num_rows, rng, time_range or (0.0, 1.0))
        cates = self._recent(user, *self.cate_cand, rng)
        brands = self._recent(user, *self.brand_cand, rng)
        cate_hit = (cates == self.ad_cate[ad][:, None]).any(axis=1)
        brand_hit = (brands == self.ad_brand[ad][:, None]).any(axis=1)
        return Impressions(user, ad, pid, cates, brands, cate_hit, brand_hit, time)

    def _draw_timed(self, num_rows: int, rng: np.random.Generator,
                    time_range: tuple[float, float]) -> tuple[np.ndarray, ...]:
        """Sorted times, and for each an ad live at that time and a scenario of its mix."""
        time = np.sort(rng.uniform(time_range[0], time_range[1], num_rows))
        ad = np.empty(num_rows, dtype=np.int64)
        pid = np.empty(num_rows, dtype=np.int64)
        edges = np.linspace(time_range[0], time_range[1], 101)  # 100 slices of time
        slot = np.clip(np.searchsorted(edges, time, side="right") - 1, 0, 99)
        for k in range(100):
            rows = np.flatnonzero(slot == k)
            if rows.size == 0:
                continue
            mid = 0.5 * (edges[k] + edges[k + 1])
            live = (self.ad_launch <= mid) & (mid < self.ad_launch + self.ad_lifetime)
            weight = self.ad_pop * live
            if weight.sum() == 0:
                weight = self.ad_pop
            ad[rows] = rng.choice(self.num_ads, rows.size, p=weight / weight.sum())
            frac = float(np.clip(mid, 0.0, 1.0))  # the mix drifts to its reverse by time 1
            share = (1 - frac) * self.pid_share + frac * self.pid_share[::-1]
            pid[rows] = rng.choice(len(PIDS), rows.size, p=share / share.sum())
        return ad, pid, time

    def probabilities(self, imp: Impressions) -> np.ndarray:
        """True probabilities of each impression.

        Args:
            imp: Impressions from ``draw`` (the ``pid`` may be swapped to ask
                what-if questions).

        Returns:
            (N, 2) array of ``p_clk`` and ``p_buy`` (click then buy).
        """
        u, a, s = imp.user, imp.ad, imp.pid
        uv, av = self.user_vec[u], self.ad_vec[a]
        cate = self.ad_cate[a]
        gsign = 2.0 * self.profile["final_gender_code"][u] - 1.0
        age = (self.profile["age_level"][u] - 3.0) / 2.0
        zprice = self.ad_zprice[a]
        sens = self.user_price_sens[u]
        # Shared part: affinity, ad/user biases, profile effects, price, intent.
        affinity = np.sum(uv * av, axis=1) / LATENT_DIM
        shared = (AFFINITY * affinity + self.ad_bias[a] + self.user_bias[u]
                  + 0.3 * gsign * self.cate_gender[cate]
                  + 0.05 * (self.profile["new_user_class_level"][u] - 1.5)
                  - 0.12 * sens * zprice
                  + 0.5 * imp.cate_hit + 0.5 * imp.brand_hit)
        # Scenario part: re-weighted slice of the affinity (minus the shared
        # weight of 1), its own bias, price sensitivity, profile interaction.
        w = PID_LATENT_WEIGHT[s] - 1.0
        scen = (AFFINITY * np.sum(w * uv * av, axis=1) / LATENT_DIM
                + PID_CLK_BIAS[s] - PID_PRICE_SENS[s] * sens * zprice
                + 0.8 * PID_GENDER_WEIGHT[s] * gsign * self.cate_gender[cate]
                + 1.0 * PID_AGE_WEIGHT[s] * age * self.cate_age[cate])
        p_clk = 1.0 / (1.0 + np.exp(-(shared + scen)))
        # Conversion: correlated with the click affinity, own latent part,
        # much more price-sensitive, active shoppers buy more.
        cv = (0.3 * shared + 0.5 * np.sum(self.user_cvec[u] * self.ad_cvec[a],
                                          axis=1) / LATENT_DIM
              + PID_BUY_BIAS[s] - 0.45 * sens * zprice
              + 0.25 * (self.profile["shopping_level"][u] - 2))
        p_cvr = 1.0 / (1.0 + np.exp(-cv))
        return np.stack([p_clk, p_clk * p_cvr], axis=1)

    def rows(self, imp: Impressions, clk: np.ndarray,
             buy: np.ndarray) -> list[list[str]]:
        """Formats impressions and labels as CSV fields in ``COLUMNS`` order."""
        u, a = imp.user, imp.ad
        prof = self.profile
        cols = [
            clk.astype(str), buy.astype(str),
            np.array(PIDS, dtype=object)[imp.pid],
            self.ad_tok[a], self.cate_tok[self.ad_cate[a]],
            self.camp_tok[self.ad_camp[a]],
            self.cust_tok[self.ad_customer[a]],
            self.brand_tok[self.ad_brand[a]], self.user_tok[u],
        ]
        for name in ["cms_segid", "cms_group_id", "final_gender_code",
                     "age_level", "pvalue_level", "shopping_level",
                     "occupation", "new_user_class_level"]:
            if name == "cms_group_id":
                vals = self.cms_group[u]
            else:
                vals = prof[name][u] + PROFILE_LEVELS[name][1]
            cols.append(vals.astype(str))
        cols.append(_join_tags(imp.tag_cates, self.cate_tok))
        cols.append(_join_tags(imp.tag_brands, self.brand_tok))
        cols.append(self.ad_price[a].astype(str))
        return [list(r) for r in zip(*cols)]

    def labelled_impressions(self, num_rows: int, rng: np.random.Generator,
                             time_range: tuple[float, float] | None = None,
                             ) -> tuple[Impressions, np.ndarray, np.ndarray,
                                        np.ndarray]:
        """Draws impressions, their true probabilities and labels.

        Args:
            num_rows: Number of rows.
            rng: Random generator of this sample.
            time_range: see ``draw``.

        Returns:
            Impressions, (N, 2) ``p_clk``/``p_buy``, and (N,) int ``clk`` and
            ``buy`` labels.
        """
        imp = self.draw(num_rows, rng, time_range)
        probs = self.probabilities(imp)
        r = rng.random(num_rows)
        clk = (r < probs[:, 0]).astype(np.int64)
        buy = (r < probs[:, 1]).astype(np.int64)  # p_buy <= p_clk: buy => clk
        return imp, probs, clk, buy

    def sample(self, num_rows: int, rng: np.random.Generator,
               time_range: tuple[float, float] | None = None,
               ) -> tuple[list[list[str]], np.ndarray]:
        """Samples labelled rows and their true probabilities.

        Args:
            num_rows: Number of rows.
            rng: Random generator of this sample (use a different stream for
                train and test).
            time_range: see ``draw`` (rows come in time order).

        Returns:
            Rows of string fields in ``COLUMNS`` order and an (N, 2) array of
            ``p_clk`` and ``p_buy``.
        """
        imp, probs, clk, buy = self.labelled_impressions(num_rows, rng, time_range)
        return self.rows(imp, clk, buy), probs

def generate(num_rows: int, seed: int = 2024, num_users: int | None = None,
             num_ads: int | None = None) -> tuple[list[list[str]], np.ndarray]:
    """Generates one labelled sample from the world of ``seed``.

    Args:
        num_rows: Number of rows.
        seed: Seed of the world and of the sample.
        num_users: Number of users in the world (default 40,000).
        num_ads: Number of ads in the world (default 6,000).

    Returns:
        Rows of string fields in ``COLUMNS`` order and an (N, 2) float array
        of the true ``p_clk`` and ``p_buy`` of each row.
    """
    world = TaobaoWorld(seed, num_users, num_ads)
    return world.sample(num_rows, np.random.default_rng([seed, 1]))


def write_csv(path: str, rows: list[list[str]], probs: np.ndarray) -> None:
    """Writes rows to ``path`` and their probabilities to ``*.oracle.csv``.

    Args:
        path: Output CSV path ending in ``.csv``.
        rows: Rows of string fields.
        probs: (N, 2) array of ``p_clk`` and ``p_buy``.
    """
    with open(path, "w", newline="\n") as f:
        f.write("".join(",".join(r) + "\n" for r in rows))
    oracle = path[:-len(".csv")] + ".oracle.csv"
    with open(oracle, "w", newline="\n") as f:
        f.write("".join(f"{p:.6g},{q:.6g}\n" for p, q in probs.tolist()))


def write_split(out_dir: str, train_rows: int, test_rows: int,
                seed: int = 2024, num_users: int | None = None,
                num_ads: int | None = None, **world_params,
                ) -> dict[str, tuple[list[list[str]], np.ndarray]]:
    """Writes ``taobao_{train,test}.csv`` and their oracle files.

    Both splits come from the same world; the test rows are a later sample
    drawn with a different rng stream. In a world with ``ad_lifetime`` the
    training rows are the period [0, 1) in time order and the test rows the
    period after it, [1, 1 + test_rows / train_rows) (a split by time; ads
    launched after the training period are new in the test rows).

    Args:
        out_dir: Output directory (created if missing).
        train_rows: Number of training rows.
        test_rows: Number of test rows.
        seed: Seed of the world and the samples.
        num_users: Number of users in the world (default 40,000).
        num_ads: Number of ads in the world (default 6,000).
        **world_params: Further ``TaobaoWorld`` structure parameters.

    Returns:
        ``{"train": (rows, probs), "test": (rows, probs)}``.
    """
    os.makedirs(out_dir, exist_ok=True)
    world = TaobaoWorld(seed, num_users, num_ads, **world_params)
    periods = {"train": (0.0, 1.0), "test": (1.0, 1.0 + test_rows / max(train_rows, 1))}
    out = {}
    for stream, (split, n) in enumerate([("train", train_rows),
                                         ("test", test_rows)], start=1):
        timed = periods[split] if world.ad_lifetime is not None else None
        rows, probs = world.sample(n, np.random.default_rng([seed, stream]), timed)
        write_csv(os.path.join(out_dir, f"taobao_{split}.csv"), rows, probs)
        out[split] = (rows, probs)
    return out


def main(argv: list[str] | None = None) -> None:
    """CLI: writes the train/test split and prints rates and oracle AUCs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="samples/data")
    parser.add_argument("--train_rows", type=int, default=200_000)
    parser.add_argument("--test_rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--num_users", type=int, default=None, help="default 40000")
    parser.add_argument("--num_ads", type=int, default=None, help="default 6000")
    parser.add_argument("--user_activity_sigma", type=float, default=1.4,
                        help="log-normal sigma of user activity (a longer tail when larger)")
    parser.add_argument("--ad_popularity_sigma", type=float, default=1.0,
                        help="log-normal sigma of ad exposure")
    parser.add_argument("--user_taste_noise", type=float, default=0.75,
                        help="stddev of the individual (non-profile) part of user taste")
    parser.add_argument("--pid_share", type=float, nargs=3, default=None,
                        help="share of each scenario (default 0.6 0.3 0.1)")
    parser.add_argument("--ad_lifetime", type=float, default=None,
                        help="ads live this long on a time axis where training is [0, 1): "
                             "training rows in time order, test rows from the period after")
    args = parser.parse_args(argv)
    start = time.time()
    splits = write_split(args.out, args.train_rows, args.test_rows, args.seed,
                         args.num_users, args.num_ads,
                         user_activity_sigma=args.user_activity_sigma,
                         ad_popularity_sigma=args.ad_popularity_sigma,
                         user_taste_noise=args.user_taste_noise, pid_share=args.pid_share,
                         ad_lifetime=args.ad_lifetime)
    print(f"wrote {args.out} in {time.time() - start:.1f}s")
    for split, (rows, probs) in splits.items():
        clk = np.array([r[0] == "1" for r in rows])
        buy = np.array([r[1] == "1" for r in rows])
        print(f"{split}: rows={len(rows)} clk_rate={clk.mean():.4f} "
              f"buy_rate={buy.mean():.4f} cvr={buy.sum() / max(clk.sum(), 1):.4f} "
              f"buys={buy.sum()} oracle_auc_clk={auc(clk, probs[:, 0]):.4f} "
              f"oracle_auc_buy={auc(buy, probs[:, 1]):.4f}")
        pids = np.array([r[2] for r in rows])
        for pid in PIDS:
            m = pids == pid
            print(f"  pid={pid}: rows={m.sum()} clk_rate={clk[m].mean():.4f} "
                  f"oracle_auc_clk={auc(clk[m], probs[m, 0]):.4f}")


if __name__ == "__main__":
    main()
