// Auth: a session with PicoShare's shared secret.
import { errorMessage } from "../../core/errors.ts";
import { login } from "../session.ts";
import { Failure, attempt, secondsSince, type Outcome } from "./common.ts";

export interface AuthFigures extends Outcome {
  seconds: number;
  /** The session cookie ("" when the login failed). */
  cookie: string;
}

export async function auth(baseUrl: string, secret: string): Promise<AuthFigures> {
  const t0 = performance.now();
  let cookie = "";
  const failure = await attempt(async () => {
    cookie = await login(baseUrl, secret).catch((err) => {
      throw new Failure("startup_failed", `login failed: ${errorMessage(err)}`);
    });
  });
  return { seconds: secondsSince(t0), cookie, failure };
}
