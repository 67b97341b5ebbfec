"""Differential test: `strata tokenize/detokenize` vs Hugging Face `tokenizers` (pip, the
reference implementation) on text neither has seen: random strings across many scripts,
whitespace kinds, emoji sequences, decomposed accents, contractions, digits, code and
special-token text, plus random slices of the corpus. A fresh seed each run (printed, and
settable with STRATA_TOKENIZER_SEED to reproduce a failure)."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata

from tokenizers import Tokenizer

BIN = os.environ["STRATA_BINARY"]
FIX = os.environ["STRATA_FIXTURES_DIR"]
N = int(os.environ.get("STRATA_TOKENIZER_CASES", "400"))

SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "accented": "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿĀāĂăĄąĆćČčĎďĐđĒēĘęĚěĞğĪīİıŁłŃńŇňŌōŐőŒœŘřŚśŞşŠšŢţŤťŪūŮůŰűŸŹźŻżŽžẞß",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯіїєґ",
    "greek": "αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهويءآأؤإئةىًٌٍَُِّْ٠١٢٣٤٥٦٧٨٩",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשתםןףץ",
    "devanagari": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसहािीुूेैोौंः्०१२३",
    "thai": "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศษสหอฮะาำิีึืุูเแโใไ่้๊๋็์๐๑๒",
    "khmer": "កខគឃងចឆជឈញដឋឌឍណតថទធនបផពភមយរលវសហឡអាិីឹឺុូួើឿៀេែៃោៅំះ៉៊់៌៍៎៏័៑្",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴急",
    "hangul": "가나다라마바사아자차카타파하각난닫랄맘밥삿앙잦찿캌탙팦핳한국어대한민국서울",
    "kana": "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンーッャュョ",
    "digits": "0123456789０１２３４５６７８９٠١٢٣٤٥٦٧٨٩०१२३४५६७८९½¼¾²³¹",
    "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»“”‘’„‚…—–·•§¶†‡‰′″‹›€£¥¢₩₹©®™°±×÷≠≤≥∞∑∏√∫≈≡←→↑↓⇒∀∃∈∉∩∪⊂⊃「」『』【】〈〉《》、。，．：；？！",
    "space": [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\v", "\f", "\u00a0", "\u3000", "\u2028",
              "\u2029", "\u0085", "\u200b", "\u2009", "\u202f", "\ufeff", " \n", "\t\n "],
    "emoji": ["🦙", "🚀", "😀", "😶\u200d🌫️", "👩\u200d💻", "👨\u200d👩\u200d👧\u200d👦", "👍🏽", "🇫🇷", "🇯🇵", "❤️", "✅",
              "🏳️\u200d🌈", "🧑🏿\u200d🚀", "☺", "⭐", "🐋", "🔥", "💯"],
    "combining": ["e\u0301", "a\u0308", "o\u0302", "n\u0303", "c\u0327", "u\u0308\u0301", "\u1100\u1161\u11a8",
                  "A\u030a", "i\u0307", "ﬁ", "Å", "Ω", "K", "ǅ", "ℌ", "①", "ｶ", "ﾞ"],
}
WORDS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ll", "I'm", "don't", "we'll",
         "hello", "Hello", "HELLO", "the", "The", " the", "world", "def", "return", "print(x)", "x**2", "==",
         "->", "=>", "/*", "*/", "//", "<br/>", "</div>", "http://example.com/a?b=c&d=e", "a_b_c", "CamelCase",
         "snake_case_name", "3.14159", "1,000,000", "2024-01-01", "12:30", "$100", "100%", "#include", "@user",
         "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<s>", "</s>", "<unk>",
         "<｜begin▁of▁sentence｜>", "<｜User｜>", "▁", "▁▁", "<0x41>", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "!!!!!!", "...", "…", "\\n", "\\t", "    ", "\t\t"]


def rand_piece(rng):
    kind = rng.random()
    if kind < 0.55:
        name = rng.choice(list(SCRIPTS))
        alphabet = SCRIPTS[name]
        n = rng.randint(1, 12)
        return "".join(rng.choice(alphabet) for _ in range(n))
    if kind < 0.85:
        return rng.choice(WORDS)
    # Any assigned code point (no surrogates, no private use, no unassigned).
    while True:
        cp = rng.choice([rng.randint(0x20, 0x2FFF), rng.randint(0x3000, 0xFFFD), rng.randint(0x10000, 0x1FAFF)])
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if unicodedata.category(chr(cp)) in ("Cn", "Co", "Cs"):
            continue
        return chr(cp)


def rand_text(rng, corpus):
    if rng.random() < 0.15:
        start = rng.randrange(0, len(corpus) - 400)
        return corpus[start:start + rng.randint(1, 400)]
    parts = []
    for _ in range(rng.randint(1, 25)):
        parts.append(rand_piece(rng))
        if rng.random() < 0.5:
            parts.append(rng.choice(SCRIPTS["space"]) if rng.random() < 0.4 else " ")
    s = "".join(parts)
    if rng.random() < 0.2:
        s = unicodedata.normalize("NFD", s)
    return s


def run_jsonl(args, lines):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for x in lines:
            f.write(json.dumps(x, ensure_ascii=True) + "\n")
        path = f.name
    try:
        out = subprocess.run([BIN] + args + ["--jsonl", path], capture_output=True, text=True, encoding="utf-8")
    finally:
        os.unlink(path)
    if out.returncode != 0:
        raise SystemExit(f"strata {' '.join(args)} failed: {out.stderr}")
    # split on "\n" only: splitlines() would also split on U+2028 and U+0085 inside JSON strings
    return [json.loads(l) for l in out.stdout.split("\n") if l]


def main():
    seed = int(os.environ.get("STRATA_TOKENIZER_SEED", random.SystemRandom().randrange(1 << 30)))
    print(f"seed {seed} (STRATA_TOKENIZER_SEED={seed} reproduces), {N} texts per tokenizer")
    rng = random.Random(seed)
    corpus = open(os.path.join(FIX, "corpus", "moby-dick.txt"), encoding="utf-8").read()
    texts = [rand_text(rng, corpus) for _ in range(N)]
    failures = 0
    for name in ["qwen3", "deepseek_v3", "mistral", "tiny512"]:
        d = os.path.join(FIX, "tokenizers", name)
        hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        for special in (False, True):
            args = ["tokenize", "--tokenizer", d] + (["--special"] if special else [])
            mine = run_jsonl(args, texts)
            for t, got in zip(texts, mine):
                want = hf.encode(t, add_special_tokens=special).ids
                if got != want:
                    failures += 1
                    if failures <= 10:
                        print(f"MISMATCH {name} special={special} text={t!r}\n  strata {got}\n  hf     {want}")
        ids = [hf.encode(t, add_special_tokens=True).ids for t in texts]
        for skip in (False, True):
            args = ["detokenize", "--tokenizer", d] + (["--skip-special"] if skip else [])
            mine = run_jsonl(args, ids)
            for t, i, got in zip(texts, ids, mine):
                want = hf.decode(i, skip_special_tokens=skip)
                if got != want:
                    failures += 1
                    if failures <= 10:
                        print(f"DECODE MISMATCH {name} skip={skip} ids={i}\n  strata {got!r}\n  hf     {want!r}")
        print(f"{name}: {N} texts encoded (with and without specials) and decoded (with and without skipping)")
    if failures:
        print(f"FAILED: {failures} mismatches (seed {seed})")
        sys.exit(1)
    print("all identical")


main()
