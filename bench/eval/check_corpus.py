#!/usr/bin/env python3
"""Validates engram's retrieval-quality eval corpus under bench/eval/.

Reads every bench/eval/corpus/<domain>.jsonl (episodes) and
bench/eval/queries/<domain>.jsonl (queries), checks the format the eval
runner expects and the rules the corpus is written to (see the field notes
below), prints counts per domain, and exits 1 on any problem.

Usage: check_corpus.py [--root DIR] [--partial]
  --root     the bench/eval directory (default: the directory of this script)
  --partial  skip the quantity rules (minimum episodes/queries per domain and
             the paraphrase share), for checking a domain while writing it

Python 3 standard library only.
"""

import argparse
import json
import os
import re
import sys

TASK_TYPES = {"code_generation", "debugging", "refactoring", "testing",
              "analysis", "documentation", "other"}
COMPLEXITIES = {"simple", "moderate", "complex"}
STEP_STATUSES = {"success", "error", "timeout"}
OUTCOME_KINDS = {"success", "failure", "partial_success"}

EPISODE_FIELDS = {"id", "task", "task_type", "domain", "language", "framework",
                  "complexity", "tags", "age_days", "steps", "outcome"}
EPISODE_REQUIRED = {"id", "task", "task_type", "domain", "complexity", "steps",
                    "outcome"}
STEP_FIELDS = {"tool", "action", "status", "output", "message"}
QUERY_FIELDS = {"id", "query", "paraphrase", "relevant", "domain"}
QUERY_REQUIRED = {"id", "query", "paraphrase", "relevant"}

MIN_EPISODES = 33
MIN_QUERIES = 13
MIN_PARAPHRASE_SHARE = 0.40
MAX_DOMAIN_HINT_SHARE = 1.0 / 3.0
MAX_OUTPUT_CHARS = 400

# Common English stop words. Content words are everything else.
STOP_WORDS = set("""
a about above after again against all am an and any are aren as at be because
been before being below between both but by can cannot could couldn did didn do
does doesn doing don down during each else etc ever every few for from further
get gets getting got had hadn has hasn have haven having he her here hers
herself him himself his how however i if in into is isn it its itself just let
like ll me might more most must mustn my myself needn no nor not now of off on
once one only or other ought our ours ourselves out over own re same shan she
should shouldn so some such than that the their theirs them themselves then
there these they this those through to too under until up upon us ve very via
was wasn we were weren what when where whether which while who whom why will
with within without won would wouldn yet you your yours yourself yourselves
also again already always another anything around away back still instead
""".split())

TOKEN_RE = re.compile(r"[a-z0-9]+")
EPISODE_ID_RE = re.compile(r"^([a-z]+)-(\d{3})$")
QUERY_ID_RE = re.compile(r"^([a-z]+)-q(\d{2,3})$")


def content_words(text):
  """The set of content words in text: lowercase [a-z0-9] runs, minus
  one-letter words and stop words, with a trailing plural "s" stripped when
  the word is longer than 3 letters and the letter before is not s/u/i."""
  words = set()
  for word in TOKEN_RE.findall(text.lower()):
    if len(word) < 2 or word in STOP_WORDS:
      continue
    if len(word) > 3 and word.endswith("s") and word[-2] not in "sui":
      word = word[:-1]
    if word in STOP_WORDS:
      continue
    words.add(word)
  return words


class Checker:
  def __init__(self, root, partial):
    self.root = root
    self.partial = partial
    self.problems = []
    self.episodes = {}   # id -> (domain file, episode)
    self.queries = {}    # id -> (domain file, query)
    self.stats = {}      # domain -> counters

  def problem(self, where, message):
    self.problems.append("%s: %s" % (where, message))

  def domain_stats(self, domain):
    return self.stats.setdefault(domain, {
        "episodes": 0, "failures": 0, "partial": 0, "queries": 0,
        "paraphrases": 0, "domain_hints": 0})

  # ---- loading -------------------------------------------------------------

  def read_jsonl(self, path):
    """Yields (line number, object) for each non-empty line of path."""
    rel = os.path.relpath(path, self.root)
    try:
      with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    except (OSError, UnicodeDecodeError) as e:
      self.problem(rel, "cannot read: %s" % e)
      return
    for number, line in enumerate(lines, 1):
      if not line.strip():
        continue
      try:
        obj = json.loads(line)
      except json.JSONDecodeError as e:
        self.problem("%s:%d" % (rel, number), "invalid JSON: %s" % e)
        continue
      if not isinstance(obj, dict):
        self.problem("%s:%d" % (rel, number), "line is not a JSON object")
        continue
      yield number, obj

  # ---- episodes ------------------------------------------------------------

  def check_string(self, where, obj, key, required=True, max_len=None):
    value = obj.get(key)
    if value is None:
      if required:
        self.problem(where, "missing %r" % key)
      return None
    if not isinstance(value, str) or not value.strip():
      self.problem(where, "%r must be a non-empty string" % key)
      return None
    if max_len is not None and len(value) > max_len:
      self.problem(where, "%r is %d chars, more than %d" %
                   (key, len(value), max_len))
    return value

  def check_episode(self, domain, rel, number, ep, prefixes):
    where = "%s:%d" % (rel, number)
    ep_id = ep.get("id")
    if isinstance(ep_id, str):
      where = "%s:%d (%s)" % (rel, number, ep_id)
    for key in sorted(EPISODE_REQUIRED - set(ep)):
      self.problem(where, "missing %r" % key)
    for key in sorted(set(ep) - EPISODE_FIELDS):
      self.problem(where, "unknown field %r" % key)

    if isinstance(ep_id, str):
      m = EPISODE_ID_RE.match(ep_id)
      if not m:
        self.problem(where, "id must look like <prefix>-<3 digits>")
      else:
        prefixes.add(m.group(1))
      if ep_id in self.episodes:
        self.problem(where, "duplicate episode id (also in %s)" %
                     self.episodes[ep_id][0])
      else:
        self.episodes[ep_id] = (rel, ep)
    elif "id" in ep:
      self.problem(where, "'id' must be a string")

    self.check_string(where, ep, "task")
    if ep.get("task_type") is not None and ep.get("task_type") not in TASK_TYPES:
      self.problem(where, "task_type %r not one of %s" %
                   (ep.get("task_type"), sorted(TASK_TYPES)))
    if "domain" in ep and ep["domain"] != domain:
      self.problem(where, "domain %r does not match file name %r" %
                   (ep["domain"], domain))
    self.check_string(where, ep, "language", required=False)
    self.check_string(where, ep, "framework", required=False)
    if ep.get("complexity") is not None and ep["complexity"] not in COMPLEXITIES:
      self.problem(where, "complexity %r not one of %s" %
                   (ep["complexity"], sorted(COMPLEXITIES)))

    tags = ep.get("tags", [])
    if (not isinstance(tags, list) or len(tags) > 4 or
        not all(isinstance(t, str) and t.strip() for t in tags)):
      self.problem(where, "tags must be a list of 0-4 non-empty strings")
    elif len(set(tags)) != len(tags):
      self.problem(where, "duplicate tags")

    if "age_days" in ep:
      age = ep["age_days"]
      if (not isinstance(age, int) or isinstance(age, bool) or
          not 0 <= age <= 400):
        self.problem(where, "age_days must be an integer in 0..400")

    steps = ep.get("steps")
    if steps is not None:
      if not isinstance(steps, list) or not 3 <= len(steps) <= 12:
        self.problem(where, "steps must be a list of 3-12 steps")
      else:
        for i, step in enumerate(steps, 1):
          self.check_step("%s step %d" % (where, i), step)

    outcome = ep.get("outcome")
    stats = self.domain_stats(domain)
    stats["episodes"] += 1
    if outcome is not None:
      self.check_outcome(where, outcome)
      if isinstance(outcome, dict):
        if outcome.get("kind") == "failure":
          stats["failures"] += 1
        elif outcome.get("kind") == "partial_success":
          stats["partial"] += 1

  def check_step(self, where, step):
    if not isinstance(step, dict):
      self.problem(where, "step must be an object")
      return
    for key in sorted(set(step) - STEP_FIELDS):
      self.problem(where, "unknown field %r" % key)
    self.check_string(where, step, "tool")
    self.check_string(where, step, "action")
    status = step.get("status")
    if status not in STEP_STATUSES:
      self.problem(where, "status %r not one of %s" %
                   (status, sorted(STEP_STATUSES)))
    if "output" in step:
      output = step["output"]
      if not isinstance(output, str):
        self.problem(where, "'output' must be a string")
      elif len(output) > MAX_OUTPUT_CHARS:
        self.problem(where, "'output' is %d chars, more than %d" %
                     (len(output), MAX_OUTPUT_CHARS))
    if status in ("error", "timeout"):
      self.check_string(where, step, "message", required=(status == "error"),
                        max_len=MAX_OUTPUT_CHARS)
    elif "message" in step:
      self.problem(where, "'message' only belongs on error/timeout steps")

  def check_outcome(self, where, outcome):
    if not isinstance(outcome, dict):
      self.problem(where, "outcome must be an object")
      return
    kind = outcome.get("kind")
    if kind not in OUTCOME_KINDS:
      self.problem(where, "outcome kind %r not one of %s" %
                   (kind, sorted(OUTCOME_KINDS)))
      return
    allowed = {"success": {"kind", "verdict"},
               "failure": {"kind", "reason", "error_details"},
               "partial_success": {"kind", "completed", "failed"}}[kind]
    for key in sorted(set(outcome) - allowed):
      self.problem(where, "unknown field %r in %s outcome" % (key, kind))
    if kind == "success":
      self.check_string(where, outcome, "verdict")
    elif kind == "failure":
      self.check_string(where, outcome, "reason")
      self.check_string(where, outcome, "error_details", required=False)
    else:
      for key in ("completed", "failed"):
        items = outcome.get(key)
        if (not isinstance(items, list) or not items or
            not all(isinstance(x, str) and x.strip() for x in items)):
          self.problem(where, "partial_success %r must be a non-empty list "
                       "of strings" % key)

  # ---- queries -------------------------------------------------------------

  def check_query(self, domain, rel, number, q, prefixes, known_domains):
    where = "%s:%d" % (rel, number)
    q_id = q.get("id")
    if isinstance(q_id, str):
      where = "%s:%d (%s)" % (rel, number, q_id)
    for key in sorted(QUERY_REQUIRED - set(q)):
      self.problem(where, "missing %r" % key)
    for key in sorted(set(q) - QUERY_FIELDS):
      self.problem(where, "unknown field %r" % key)

    if isinstance(q_id, str):
      m = QUERY_ID_RE.match(q_id)
      if not m:
        self.problem(where, "id must look like <prefix>-q<2-3 digits>")
      elif prefixes and m.group(1) not in prefixes:
        self.problem(where, "id prefix %r differs from the episode prefix %s"
                     % (m.group(1), sorted(prefixes)))
      if q_id in self.queries:
        self.problem(where, "duplicate query id (also in %s)" %
                     self.queries[q_id][0])
      else:
        self.queries[q_id] = (rel, q)
    elif "id" in q:
      self.problem(where, "'id' must be a string")

    text = self.check_string(where, q, "query")
    paraphrase = q.get("paraphrase")
    if "paraphrase" in q and not isinstance(paraphrase, bool):
      self.problem(where, "'paraphrase' must be true or false")
    if "domain" in q:
      if q["domain"] != domain:
        self.problem(where, "domain %r does not match file name %r" %
                     (q["domain"], domain))
      if q["domain"] not in known_domains:
        self.problem(where, "domain %r has no corpus file" % q["domain"])

    stats = self.domain_stats(domain)
    stats["queries"] += 1
    if paraphrase is True:
      stats["paraphrases"] += 1
    if "domain" in q:
      stats["domain_hints"] += 1

    relevant = q.get("relevant")
    if relevant is None:
      return
    if not isinstance(relevant, dict) or not 1 <= len(relevant) <= 4:
      self.problem(where, "'relevant' must map 1-4 episode ids to grades")
      return
    for ep_id, grade in relevant.items():
      if grade not in (1, 2, 3) or isinstance(grade, bool):
        self.problem(where, "grade for %s must be 1, 2 or 3" % ep_id)
    if 3 not in relevant.values():
      self.problem(where, "no grade-3 target")
    # Relevant ids and the paraphrase rule need every episode loaded, so they
    # are checked in check_references().

  def check_references(self):
    for q_id, (rel, q) in sorted(self.queries.items()):
      where = "%s (%s)" % (rel, q_id)
      relevant = q.get("relevant")
      if not isinstance(relevant, dict):
        continue
      for ep_id in relevant:
        if ep_id not in self.episodes:
          self.problem(where, "relevant episode %s does not exist" % ep_id)
      text = q.get("query")
      if q.get("paraphrase") is not True or not isinstance(text, str):
        continue
      query_words = content_words(text)
      for ep_id, grade in relevant.items():
        if grade != 3 or ep_id not in self.episodes:
          continue
        task = self.episodes[ep_id][1].get("task")
        if not isinstance(task, str):
          continue
        shared = query_words & content_words(task)
        if len(shared) > 1:
          self.problem(where, "paraphrase shares %d content words with the "
                       "task of %s (at most 1): %s" %
                       (len(shared), ep_id, ", ".join(sorted(shared))))

  # ---- driver --------------------------------------------------------------

  def run(self):
    corpus_dir = os.path.join(self.root, "corpus")
    queries_dir = os.path.join(self.root, "queries")
    corpus_files = sorted(f for f in os.listdir(corpus_dir)
                          if f.endswith(".jsonl")) if os.path.isdir(
                              corpus_dir) else []
    query_files = sorted(f for f in os.listdir(queries_dir)
                         if f.endswith(".jsonl")) if os.path.isdir(
                             queries_dir) else []
    if not corpus_files:
      self.problem(os.path.relpath(corpus_dir, self.root),
                   "no corpus/*.jsonl files")
    known_domains = {f[:-len(".jsonl")] for f in corpus_files}
    for f in query_files:
      if f[:-len(".jsonl")] not in known_domains:
        self.problem("queries/" + f, "no matching corpus/" + f)

    prefixes_by_domain = {}
    for f in corpus_files:
      domain = f[:-len(".jsonl")]
      prefixes = prefixes_by_domain.setdefault(domain, set())
      self.domain_stats(domain)
      for number, ep in self.read_jsonl(os.path.join(corpus_dir, f)):
        self.check_episode(domain, "corpus/" + f, number, ep, prefixes)
      if len(prefixes) > 1:
        self.problem("corpus/" + f, "episode ids use several prefixes: %s" %
                     ", ".join(sorted(prefixes)))
    # A prefix belongs to one domain only.
    owner = {}
    for domain, prefixes in sorted(prefixes_by_domain.items()):
      for p in prefixes:
        if p in owner:
          self.problem("corpus/%s.jsonl" % domain, "id prefix %r also used by "
                       "corpus/%s.jsonl" % (p, owner[p]))
        owner[p] = domain

    for f in query_files:
      domain = f[:-len(".jsonl")]
      prefixes = prefixes_by_domain.get(domain, set())
      for number, q in self.read_jsonl(os.path.join(queries_dir, f)):
        self.check_query(domain, "queries/" + f, number, q, prefixes,
                         known_domains)
    self.check_references()

    if not self.partial:
      for domain, s in sorted(self.stats.items()):
        where = domain
        if s["episodes"] < MIN_EPISODES:
          self.problem(where, "%d episodes, need at least %d" %
                       (s["episodes"], MIN_EPISODES))
        if s["queries"] < MIN_QUERIES:
          self.problem(where, "%d queries, need at least %d" %
                       (s["queries"], MIN_QUERIES))
        if s["queries"] and s["paraphrases"] < MIN_PARAPHRASE_SHARE * s[
            "queries"]:
          self.problem(where, "%d of %d queries are paraphrases, need at "
                       "least %d%%" % (s["paraphrases"], s["queries"],
                                       round(100 * MIN_PARAPHRASE_SHARE)))
        if s["domain_hints"] > MAX_DOMAIN_HINT_SHARE * s["queries"]:
          self.problem(where, "%d of %d queries carry 'domain', at most a "
                       "third may" % (s["domain_hints"], s["queries"]))

  def report(self):
    header = "%-16s %8s %8s %8s %8s %8s %8s" % (
        "domain", "episodes", "failures", "partial", "queries", "paraphr",
        "dom-hint")
    print(header)
    totals = {}
    for domain, s in sorted(self.stats.items()):
      print("%-16s %8d %8d %8d %8d %8d %8d" % (
          domain, s["episodes"], s["failures"], s["partial"], s["queries"],
          s["paraphrases"], s["domain_hints"]))
      for k, v in s.items():
        totals[k] = totals.get(k, 0) + v
    if totals:
      print("%-16s %8d %8d %8d %8d %8d %8d" % (
          "total", totals["episodes"], totals["failures"], totals["partial"],
          totals["queries"], totals["paraphrases"], totals["domain_hints"]))
    if self.problems:
      print("\n%d problem(s):" % len(self.problems), file=sys.stderr)
      for p in self.problems:
        print("  " + p, file=sys.stderr)
    else:
      print("\nOK")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=os.path.dirname(
      os.path.abspath(__file__)), help="the bench/eval directory")
  parser.add_argument("--partial", action="store_true",
                      help="skip the quantity rules")
  args = parser.parse_args()
  checker = Checker(args.root, args.partial)
  checker.run()
  checker.report()
  return 1 if checker.problems else 0


if __name__ == "__main__":
  sys.exit(main())
