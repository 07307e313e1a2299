"""Seeded, varied web-like pages in DCLM-Pool layout, for the demo, tests and benchmarks.

`generate_pages(n, seed)` returns page dicts as `dclm extract` writes them: `text`, `url`, `metadata` (the
WARC headers, `WARC-Target-URI` among them) and `warcinfo`. Most pages are English articles with the
boilerplate real extractions carry (menus, cookie notices, "Read more...", like counters, sign-in
prompts, carts, ALL-CAPS banners, bare numbers, runs of blank lines); a share are the kinds of pages the
DCLM-Baseline heuristics exist to remove (banned URLs, other languages, stubs, link or hashtag lists, bullet
and ellipsis spam, number tables, keyword soup, repeated blocks, boilerplate-heavy pages), so every step
of the recipe has something to do. Same `n` and `seed`, same pages.
"""

from __future__ import annotations

import hashlib
import random
import uuid

NOUNS = """time year people way day man woman child world school state family student group country problem
hand part place case week company system program question work government number night point home water
room mother area money story fact month lot right study book eye job word business issue side kind head
house service friend father power hour game line end member law car city community name president team
minute idea kid body information back parent face others level office door health person art war history
party result change morning reason research girl guy moment air teacher force education garden recipe
kitchen river mountain village market engine software library museum weather season harvest festival
journey bridge island forest planet camera guitar bicycle coffee bread cheese window station hospital
doctor nurse farmer artist writer reader report article chapter lesson method process network signal
device battery screen keyboard memory storage budget invoice customer product feature release update
version project deadline meeting schedule policy contract license permit election council neighborhood
street highway airport harbor tunnel factory warehouse shop restaurant menu dish flavor ingredient oven
sauce salad soup dessert painting sculpture concert album song lyric poem novel theater film actor
director audience critic review score league match player coach season trophy stadium ticket fan""".split()
VERBS = """builds explains describes improves changes finds keeps brings begins shows hears plays runs moves
likes believes holds writes provides includes continues sets learns leads understands watches follows
stops creates speaks reads spends grows opens walks offers remembers considers appears buys waits serves
sends expects stays reaches suggests raises passes sells requires reports decides pulls covers supports
measures tests records repairs designs delivers prepares collects compares discovers protects replaces
organizes announces publishes schedules reviews""".split()
VERBS_BASE = """build explain describe improve change find keep bring begin show hear play run move like
believe hold write provide include continue set learn lead understand watch follow stop create speak read
spend grow open walk offer remember consider appear buy wait serve send expect stay reach suggest raise
pass sell require report decide pull cover support measure test record repair design deliver prepare
collect compare discover protect replace organize announce publish schedule review""".split()
ADJECTIVES = """good new first last long great little own other old right big high different small large next
early young important few public bad same able local sure free better true whole real best hard clear
recent certain personal open red difficult available likely short single medical current wrong private
past foreign fine common poor natural significant similar hot dead central happy serious ready simple
left physical general environmental financial blue democratic dark various entire close legal religious
cold final main green nice huge popular traditional cultural quiet bright careful useful modern ancient
fresh warm heavy narrow gentle rapid steady rural urban digital practical detailed""".split()
ADVERBS = """quickly slowly carefully often rarely usually finally recently clearly simply really actually
probably certainly nearly almost quietly easily suddenly generally especially directly""".split()
NAMES = """Anna Ben Carla David Elena Frank Grace Henry Irene Jack Karen Leo Maria Nathan Olivia Peter Rosa
Samuel Tina Victor""".split()
PLACES = """Portland Denver Austin Boston Chicago Seattle Atlanta Phoenix Dallas Madison Raleigh Tucson
Omaha Richmond Spokane Savannah""".split()

FRENCH = """le la les un une des et est dans pour avec sur pas plus nous vous ils elles mais comme tout
bien très aussi fait faire avoir être cette ces leur notre votre maison ville jour année travail temps
monde enfant école famille pays problème question gouvernement entreprise histoire voiture eau nuit
matin raison recherche professeur marché rivière montagne village musée saison voyage pont forêt""".split()
GERMAN = """der die das und ist nicht mit auf für sich dem den ein eine einen auch als noch wie wir ihr sie
aber nach bei aus wenn nur schon sehr kann wird haben sein werden Haus Stadt Tag Jahr Arbeit Zeit Welt
Kind Schule Familie Land Frage Regierung Unternehmen Geschichte Wasser Nacht Morgen Grund Forschung
Lehrer Markt Fluss Berg Dorf Museum Reise Brücke Wald Straße Garten Küche""".split()
SPANISH = """el la los las un una y es en para con por no más pero como todo muy también hace tiene ser
estar este esta nuestro casa ciudad día año trabajo tiempo mundo niño escuela familia país problema
pregunta gobierno empresa historia coche agua noche mañana razón investigación maestro mercado río
montaña pueblo museo viaje puente bosque calle jardín cocina""".split()

TLDS = ["com", "org", "net", "co.uk", "de", "info", "io", "blog", "news", "edu"]
SITE_WORDS = """daily green river city home garden tech food travel local world north valley sun bright
open smart family craft music sport health market news review guide""".split()

NAV = ["Home", "About", "Contact", "Blog", "Shop", "News", "Events", "Login", "Search", "Menu", "Careers", "FAQ"]
COOKIE = ["This website uses cookies to improve your experience. Accept",
          "We use cookies to ensure that we give you the best experience on our website.",
          "By continuing to browse you agree to our use of cookies. Privacy Policy"]
CAPS = ["FREE SHIPPING ON ALL ORDERS OVER $50", "SUBSCRIBE TO OUR NEWSLETTER", "LIMITED TIME OFFER",
        "SHARE THIS ARTICLE", "RELATED POSTS", "LEAVE A REPLY", "BREAKING NEWS"]
COUNTERS = ["{n} likes", "{n} Comments", "{n}K views", "{n} shares", "{n} followers", "{n}.{m}k Views",
            "{n} downloads", "{n} retweets"]
SIGNIN = ["Sign-in to comment", "Sign-in or register", "Sign-in", "Sign-in to your account"]
CART = ["{n} items in cart", "You have {n} items in cart", "Cart: {n} items in cart"]
READ_MORE = ["Read more...", "Continue reading. Read more...", "Click here. Read more..."]

# a few words of the kinds RefinedWeb's URL banlists hold (strict: any substring after deleting - and .;
# hard: one whole word; soft: two distinct whole words)
BANNED_URL_PARTS = {"strict": ["free-doggy-style", "big.tits"], "hard": ["bondage", "cialis"],
                    "soft": ["escort", "erotic", "nude", "panties"]}
# domains the tests' and benchmark's curated banlist holds (the real curated list is an external asset)
BANNED_DOMAINS = ["casino-royale-bets.com", "cheap-pills-online.net", "free-movies-stream.org", "spam-links.info"]

KINDS = [("article", 0.59), ("short", 0.05), ("foreign", 0.06), ("banned_domain", 0.02), ("banned_word", 0.04),
         ("links", 0.02), ("hashtags", 0.02), ("bullets", 0.02), ("ellipsis", 0.03), ("numbers", 0.02),
         ("keywords", 0.02), ("repeated", 0.04), ("boilerplate", 0.05), ("long_words", 0.01), ("forum", 0.01)]


def _sentence(rng: random.Random) -> str:
    n1, n2, n3 = rng.choice(NOUNS), rng.choice(NOUNS), rng.choice(NOUNS)
    a1, a2 = rng.choice(ADJECTIVES), rng.choice(ADJECTIVES)
    v, vb, adv = rng.choice(VERBS), rng.choice(VERBS_BASE), rng.choice(ADVERBS)
    name, place = rng.choice(NAMES), rng.choice(PLACES)
    k = rng.randrange(18)
    if k == 0:
        s = f"The {a1} {n1} {v} the {n2} of the {a2} {n3}"
    elif k == 1:
        s = f"{name} said that the {n1} in {place} {v} a {a1} {n2} every {rng.choice(['week', 'year', 'month'])}"
    elif k == 2:
        s = f"If you want to {vb} your {n1}, it is {a1} to have a {a2} {n2} with you"
    elif k == 3:
        s = f"Most people {adv} {vb} the {n1} before they {rng.choice(VERBS_BASE)} any {n2}"
    elif k == 4:
        s = f"In {rng.randrange(1950, 2025)}, the {n1} of {place} had {rng.randrange(2, 900)} {n2}s and a {a1} {n3}"
    elif k == 5:
        s = f"We {adv} {vb} this {n1} because it {v} {a1} {n2}s for our {n3}"
    elif k == 6:
        s = f"There is no {a1} way to {vb} a {n1}, but a {a2} {n2} can help"
    elif k == 7:
        s = f"According to {name}, the {a1} {n1} {adv} {v} more {n2} than the old {n3}"
    elif k == 8:
        s = f"Our {n1} team {v} {a1} {n2}s and {rng.choice(VERBS)} them to every {n3} in {place}"
    elif k == 9:
        s = f"That is why the {n1} should {vb} its {a1} {n2} and {rng.choice(VERBS_BASE)} the {n3}"
    elif k == 10:
        s = f"You can {vb} a {a1} {n1} at home with only a {n2}, some {n3} and a little patience"
    elif k == 11:
        s = f"After the {n1}, {name} and {rng.choice(NAMES)} went to the {a1} {n2} near the {n3}"
    elif k == 12:
        s = f"It costs about ${rng.randrange(3, 400)} to {vb} a {n1} like this, which is {a1} for a {n2}"
    elif k == 13:
        s = f"Why does the {n1} {vb} the {n2} so {adv}?"
    elif k == 14:
        s = f"The {n1}, the {n2} and the {n3} all have to be {a1} before the {a2} {rng.choice(NOUNS)} {v} anything"
    elif k == 15:
        s = f"Each {n1} with a {a1} {n2} will {vb} the {n3} {adv}, and that is what {name} {rng.choice(VERBS)}"
    elif k == 16:
        s = f"{name}{rng.choice([chr(39), chr(8217)])}s {n1} doesn{rng.choice([chr(39), chr(8217)])}t {vb} the {a1} {n2}, but it{chr(39)}s {adv} {a2}"
    else:
        s = f"We{chr(39)}re sure you{chr(39)}ll {vb} the {n1} \u2014 it{chr(39)}s the {a1} {n2} of {place}"
    s = s[0].upper() + s[1:]
    return s if s.endswith("?") else s + rng.choice([".", ".", ".", ".", "!"])


def _paragraph(rng: random.Random, lo: int = 2, hi: int = 7) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(lo, hi)))


def _title(rng: random.Random) -> str:
    return f"{rng.choice(['How to', 'Why you should', 'Ten ways to', 'When to'])} {rng.choice(VERBS_BASE)} " \
           f"a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}"


def _boilerplate_line(rng: random.Random) -> str:
    k = rng.randrange(9)
    n, m = rng.randrange(1, 999), rng.randrange(1, 9)
    if k == 0:
        return " | ".join(rng.sample(NAV, rng.randint(3, 6)))
    if k == 1:
        return rng.choice(NAV)
    if k == 2:
        return rng.choice(CAPS)
    if k == 3:
        return rng.choice(COUNTERS).format(n=n, m=m)
    if k == 4:
        return str(rng.choice([rng.randrange(1990, 2025), rng.randrange(10 ** 5, 10 ** 9)]))
    if k == 5:
        return rng.choice(SIGNIN)
    if k == 6:
        return rng.choice(CART).format(n=m)
    if k == 7:
        return rng.choice(COOKIE)
    return rng.choice(READ_MORE)


def _domain(rng: random.Random) -> str:
    return f"{rng.choice(SITE_WORDS)}{rng.choice(['', '-'])}{rng.choice(SITE_WORDS)}.{rng.choice(TLDS)}"


def _url(rng: random.Random, domain: str | None = None, path_word: str | None = None) -> str:
    host = domain or _domain(rng)
    www = "www." if rng.random() < 0.5 else ""
    slug = "-".join(rng.choice(NOUNS + ADJECTIVES) for _ in range(rng.randint(1, 4)))
    if path_word:
        slug = f"{slug}-{path_word}" if rng.random() < 0.5 else f"{path_word}/{slug}"
    return f"{rng.choice(['https', 'http'])}://{www}{host}/{rng.choice(['blog', 'news', 'p', '2023', 'articles'])}/{slug}"


def _article(rng: random.Random, n_par: int | None = None, boilerplate: float = 0.08, urls: bool = True) -> str:
    lines = []
    if rng.random() < 0.6:
        lines.append(" | ".join(rng.sample(NAV, rng.randint(3, 7))))
    lines.append(_title(rng))
    for _ in range(n_par if n_par is not None else max(1, int(rng.lognormvariate(1.9, 0.6)))):
        lines.append(_paragraph(rng))
        if rng.random() < boilerplate:
            lines.append(_boilerplate_line(rng))
        if urls and rng.random() < 0.04:
            lines.append(f"More details at {_url(rng)} or see {rng.choice(SITE_WORDS)}.{rng.choice(TLDS)} for the full list.")
        if rng.random() < 0.02:
            lines.append(f"Server {rng.randrange(10, 250)}.{rng.randrange(0, 255)}.{rng.randrange(0, 255)}.{rng.randrange(1, 255)} is down for maintenance.")
        if rng.random() < 0.3:
            lines.append("")
        if rng.random() < 0.05:
            lines.extend([""] * rng.randint(2, 5))
    if rng.random() < 0.5:
        lines.append(rng.choice(COOKIE))
    return "\n".join(lines)


def _foreign(rng: random.Random) -> str:
    vocab = rng.choice([FRENCH, GERMAN, SPANISH])
    pars = []
    for _ in range(rng.randint(2, 8)):
        sents = [" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 16))).capitalize() + "." for _ in range(rng.randint(2, 6))]
        pars.append(" ".join(sents))
    return "\n".join(pars)


def _text(kind: str, rng: random.Random) -> str:
    if kind == "article" or kind in ("banned_domain", "banned_word"):
        return _article(rng)
    if kind == "short":
        return f"{_title(rng)}\n{_sentence(rng)}\n{rng.choice(COOKIE) if rng.random() < 0.5 else _sentence(rng)}"
    if kind == "foreign":
        return _foreign(rng)
    if kind == "links":
        return "Useful links\n" + "\n".join(f"{_url(rng)}?id={uuid.UUID(int=rng.getrandbits(128)).hex}" for _ in range(rng.randint(20, 60)))
    if kind == "hashtags":
        return "\n".join(f"{_sentence(rng)} " + " ".join(f"#{rng.choice(NOUNS)}" for _ in range(rng.randint(2, 6)))
                         for _ in range(rng.randint(8, 20)))
    if kind == "bullets":
        return "\n".join(f"{rng.choice(['•', '*', '-'])} {_sentence(rng)}" for _ in range(rng.randint(10, 30)))
    if kind == "ellipsis":
        return "\n".join(f"{_sentence(rng)[:-1]} {rng.choice(ADVERBS)}..." if rng.random() < 0.6 else _sentence(rng)
                         for _ in range(rng.randint(10, 30)))
    if kind == "numbers":
        rows = [" ".join(f"{rng.randrange(0, 10 ** rng.randint(1, 6))}" for _ in range(rng.randint(4, 9))) for _ in range(rng.randint(10, 40))]
        return "Results table for the " + rng.choice(NOUNS) + " season\n" + "\n".join(rows)
    if kind == "keywords":
        return "\n".join(" ".join(rng.choice(ADJECTIVES + NOUNS) for _ in range(rng.randint(5, 12))).title()
                         for _ in range(rng.randint(8, 20)))
    if kind == "repeated":
        block = _paragraph(rng, 2, 4)
        parts = [_paragraph(rng) for _ in range(rng.randint(1, 4))]
        for _ in range(rng.randint(3, 8)):
            parts.insert(rng.randrange(len(parts) + 1), block)
        return "\n\n".join(parts)
    if kind == "boilerplate":
        return _article(rng, n_par=rng.randint(2, 6), boilerplate=0.9)
    if kind == "long_words":
        return "\n".join(" ".join(rng.choice(NOUNS) + rng.choice(ADJECTIVES) + rng.choice(NOUNS) + "ization"
                                  for _ in range(rng.randint(6, 14))) for _ in range(rng.randint(6, 12)))
    # forum: a thread with quoted "Read more..." stubs, counters and sign-in prompts between posts
    posts = []
    for _ in range(rng.randint(3, 8)):
        posts.append(f"{rng.choice(NAMES)} wrote:")
        posts.append(_paragraph(rng, 1, 4))
        posts.append(rng.choice(COUNTERS).format(n=rng.randrange(1, 300), m=rng.randrange(1, 9)))
    posts.append(rng.choice(SIGNIN))
    return "\n".join(posts)


def _metadata(rng: random.Random, url: str, text: str, index: int) -> dict:
    date = f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    return {
        "WARC-Type": "response",
        "WARC-Date": date,
        "WARC-Record-ID": f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>",
        "Content-Length": str(len(text.encode()) + 400 + rng.randrange(20000)),
        "Content-Type": "application/http; msgtype=response",
        "WARC-Warcinfo-ID": "<urn:uuid:00000000-0000-4000-8000-000000000000>",
        "WARC-Concurrent-To": f"<urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}>",
        "WARC-IP-Address": f"{rng.randrange(1, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "WARC-Target-URI": url,
        "WARC-Payload-Digest": "sha1:" + hashlib.sha1(f"{index}:{url}".encode()).hexdigest().upper()[:32],
        "WARC-Block-Digest": "sha1:" + hashlib.sha1(f"{url}:{index}".encode()).hexdigest().upper()[:32],
        "WARC-Identified-Payload-Type": "text/html",
    }


WARCINFO = ("isPartOf: CC-MAIN-2023-06\npublisher: dclm demo (synthetic)\ndescription: generated by "
            "dclm.demo.webpages\nformat: WARC File Format 1.1\n")


def generate_pages(n: int, seed: int = 0) -> list[dict]:
    """`n` varied web-like pages (see the module docstring); deterministic in (`n`, `seed`) and each page
    depends only on (`seed`, its index)."""
    kinds, weights = zip(*KINDS)
    pages = []
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        kind = rng.choices(kinds, weights)[0]
        if kind == "banned_domain":
            url = _url(rng, domain=rng.choice(BANNED_DOMAINS))
        elif kind == "banned_word":
            group = rng.choice(["strict", "hard", "soft"])
            words = BANNED_URL_PARTS[group]
            part = "-".join(rng.sample(words, 2)) if group == "soft" else rng.choice(words)
            url = _url(rng, path_word=part)
        else:
            url = _url(rng)
        text = _text(kind, rng)
        if rng.random() < 0.15:  # text that starts with a TLD-like string ("The...", "In...") and holds a URL
            text = f"The {rng.choice(NOUNS)} page is at {_url(rng)} now.\n{text}"
        pages.append({"text": text, "url": url, "metadata": _metadata(rng, url, text, i), "warcinfo": WARCINFO})
    return pages


def clean_articles(n: int, seed: int) -> list[dict]:
    """Articles of the pool's prose without boilerplate, links or spam: the held-out clean text the demo measures
    perplexity on (a seed of their own, so none of them is in the pool)."""
    rng = random.Random(f"clean:{seed}")
    return [{"text": _article(rng, boilerplate=0.0, urls=False), "id": f"clean-{i}"} for i in range(n)]
