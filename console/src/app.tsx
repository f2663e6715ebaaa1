import { useCallback, useEffect, useState } from "preact/hooks";
import type { OverviewView, SessionView } from "../../src/gateway/admin-api.ts";
import { Api, ApiError, signInProblem, storedKey, storeKey } from "./api.ts";
import { href, routeOf, SECTIONS, type Route } from "./routes.ts";
import { AdaptersView } from "./views/adapters.tsx";
import { DocumentsView } from "./views/documents.tsx";
import { OverviewPage } from "./views/overview.tsx";
import { PlaygroundView } from "./views/playground.tsx";
import { SignIn } from "./views/sign-in.tsx";
import { UsageView } from "./views/usage.tsx";

type Phase =
  | { readonly kind: "checking" }
  | { readonly kind: "signIn"; readonly problem: string | undefined }
  | { readonly kind: "unreachable"; readonly problem: string }
  | { readonly kind: "ready"; readonly api: Api; readonly overview: OverviewView };

function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(location.hash));
  useEffect(() => {
    const follow = () => setRoute(routeOf(location.hash));
    addEventListener("hashchange", follow);
    return () => removeEventListener("hashchange", follow);
  }, []);
  return route;
}

/** Tries a key (or none) on the overview, which needs the admin scope. */
async function check(key: string | undefined): Promise<{ api: Api; overview: OverviewView }> {
  const api = new Api(key);
  return { api, overview: await api.get<OverviewView>("/v1/admin/overview") };
}

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: "checking" });
  const route = useRoute();

  const ready = useCallback((api: Api, overview: OverviewView) => {
    api.onUnauthorized = (error) => {
      storeKey(undefined);
      setPhase({ kind: "signIn", problem: `Signed out: ${signInProblem(error)}` });
    };
    setPhase({ kind: "ready", api, overview });
  }, []);

  const start = useCallback(() => {
    setPhase({ kind: "checking" });
    const key = storedKey();
    // Without a key, ask first whether one is needed: the overview would answer 401, which the
    // gateway keeps among its latest errors.
    const opening =
      key !== undefined
        ? check(key)
        : new Api(undefined)
            .get<SessionView>("/v1/admin/session")
            .then((session) => (session.scopes.includes("admin") ? check(undefined) : undefined));
    opening.then(
      (checked) => (checked === undefined ? setPhase({ kind: "signIn", problem: undefined }) : ready(checked.api, checked.overview)),
      (error: unknown) => {
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          if (key !== undefined) storeKey(undefined);
          setPhase({ kind: "signIn", problem: key !== undefined ? signInProblem(error) : undefined });
        } else {
          setPhase({ kind: "unreachable", problem: error instanceof Error ? error.message : String(error) });
        }
      },
    );
  }, [ready]);

  useEffect(start, [start]);

  const signIn = async (key: string): Promise<string | undefined> => {
    try {
      const { api, overview } = await check(key);
      storeKey(key);
      ready(api, overview);
      return undefined;
    } catch (error) {
      return error instanceof ApiError ? signInProblem(error) : String(error);
    }
  };

  const signOut = () => {
    storeKey(undefined);
    setPhase({ kind: "signIn", problem: undefined });
  };

  if (phase.kind === "checking") return <p class="boot">Connecting to the gateway…</p>;
  if (phase.kind === "unreachable") {
    return (
      <main class="centered">
        <h1>Diatonic console</h1>
        <p role="alert" class="error">
          {phase.problem}
        </p>
        <button type="button" onClick={start}>
          Try again
        </button>
      </main>
    );
  }
  if (phase.kind === "signIn") return <SignIn problem={phase.problem} onSignIn={signIn} />;

  const { api, overview } = phase;
  return (
    <div class="shell">
      <header class="topbar">
        <div class="brand">
          <span class="logo" aria-hidden="true">
            D
          </span>
          <span>Diatonic</span>
        </div>
        <div class="platform" data-testid="platform">
          <strong>{overview.platform}</strong>
          {overview.environment !== null && <span class="tag">{overview.environment}</span>}
          <span class={`tag ${overview.gateway.auth === "disabled" ? "tag-warn" : ""}`}>
            {overview.gateway.auth === "disabled" ? "auth off" : `auth ${overview.gateway.auth}`}
          </span>
        </div>
        {api.key !== undefined && (
          <button type="button" class="secondary" onClick={signOut}>
            Sign out
          </button>
        )}
      </header>
      <nav class="tabs" aria-label="Console sections">
        {SECTIONS.map((section) => (
          <a key={section.id} href={href(section.id)} aria-current={route.section === section.id ? "page" : undefined}>
            {section.label}
          </a>
        ))}
      </nav>
      <main id="main">
        {route.section === "overview" && <OverviewPage api={api} />}
        {route.section === "adapters" && <AdaptersView api={api} />}
        {route.section === "playground" && (
          <PlaygroundView api={api} adapter={route.adapter} authRequired={overview.gateway.auth !== "disabled"} />
        )}
        {route.section === "documents" && <DocumentsView api={api} adapter={route.adapter} />}
        {route.section === "usage" && <UsageView api={api} />}
      </main>
    </div>
  );
}
