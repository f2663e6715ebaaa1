"""The official Python OpenAI client against the gateway: each check prints one JSON line.

Usage: python python_client.py BASE_URL KEY CODE_ONLY_KEY
"""
import json
import sys

import openai
from openai import OpenAI

base, key, code_only = sys.argv[1:4]
client = OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=10)


def report(check, **values):
    print(json.dumps({"check": check, **values}), flush=True)


def error_of(call):
    try:
        call()
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        return {"class": type(error).__name__, "status": error.status_code, "code": body.get("code"), "type": body.get("type")}
    return {"class": None}


report("models", ids=[model.id for model in client.models.list().data])

answer = client.chat.completions.create(model="code", messages=[{"role": "user", "content": "hi"}])
report("chat", model=answer.model, content=answer.choices[0].message.content, completion_tokens=answer.usage.completion_tokens)

stream = client.chat.completions.create(
    model="chatbot",
    messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    stream=True,
    stream_options={"include_usage": True},
)
chunks = list(stream)
report(
    "stream",
    content="".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices),
    models=sorted({chunk.model for chunk in chunks}),
    completion_tokens=chunks[-1].usage.completion_tokens if chunks[-1].usage else None,
)

completion = client.completions.create(model="code", prompt="def f():")
report("completion", object=completion.object, model=completion.model, text=completion.choices[0].text)

embeddings = client.embeddings.create(model="llama-base", input=["a", "b"])
report("embeddings", count=len(embeddings.data), dimensions=len(embeddings.data[0].embedding))

prefixed = OpenAI(base_url=f"{base}/code/v1", api_key=key, max_retries=0, timeout=10)
report("prefix", model=prefixed.chat.completions.create(model="ignored", messages=[{"role": "user", "content": "hi"}]).model)

report("unknown-model", **error_of(lambda: client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])))
report("bad-key", **error_of(lambda: OpenAI(base_url=f"{base}/v1", api_key="sk-wrong", max_retries=0).models.list()))
report("not-allowed", **error_of(lambda: OpenAI(base_url=f"{base}/v1", api_key=code_only, max_retries=0).chat.completions.create(model="chatbot", messages=[{"role": "user", "content": "hi"}])))
report("bad-request", **error_of(lambda: client.chat.completions.create(model="code", messages=[])))
report("too-large", **error_of(lambda: client.chat.completions.create(model="code", messages=[{"role": "user", "content": "x" * 8192}])))
