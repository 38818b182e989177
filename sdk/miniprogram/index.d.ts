// Types of @wxbridge/miniprogram (index.js). Checked by test/types-check.ts.

/** Which login a client uses: `wx.login` (WeChat) or `wx.qy.login` (WeCom). */
export type Platform = 'wechat' | 'wecom';

/** The subset of the mini program's `wx` this SDK uses (inject a fake one in tests). */
export interface WxLike {
  request(options: {
    url: string;
    method?: string;
    header?: Record<string, string>;
    data?: unknown;
    dataType?: string;
    responseType?: string;
    timeout?: number;
    success(res: { statusCode: number; data: unknown; header?: Record<string, string> }): void;
    fail(res: { errMsg: string }): void;
  }): unknown;
  login?(options: { success(res: { code: string; errMsg?: string }): void; fail(res: { errMsg: string }): void }): void;
  qy?: {
    login?(options: { success(res: { code: string; errMsg?: string }): void; fail(res: { errMsg: string }): void }): void;
  };
  getSystemInfoSync?(): { environment?: string };
  getStorageSync?(key: string): unknown;
  setStorageSync?(key: string, value: unknown): void;
  removeStorageSync?(key: string): void;
}

export interface ClientOptions {
  /** The bridge, e.g. `https://bridge.example.com` (listed in the mini program's request domains). */
  baseUrl: string;
  /** The tenant key. */
  tenant: string;
  /** The mini program's key under `wechat.mini_programs` or `wecom.mini_programs` of the tenant. */
  miniProgram: string;
  /** Default `'auto'`: WeCom when `wx.getSystemInfoSync().environment === 'wxwork'` or `wx.qy` exists. */
  platform?: Platform | 'auto';
  /** Where the session is kept; default `wxbridge:session:{tenant}:{miniProgram}`. One per mini program. */
  storageKey?: string;
  /** What `request()` resolves relative URLs against (your business backend); default `baseUrl`. */
  apiBaseUrl?: string;
  /** The `wx` object; default the mini program's global `wx`. */
  wx?: WxLike;
  /** Milliseconds since the epoch; default `Date.now`. */
  now?: () => number;
}

/** The user a session belongs to, as the bridge reports it. */
export interface BridgeUser {
  id: number;
  name: string;
  status: 'active' | 'disabled' | 'left' | string;
  avatar: string | null;
}

/** What `login()` resolves with (never the token: see `getToken()`). */
export interface LoginResult {
  user: BridgeUser | null;
  /** Milliseconds since the epoch. */
  expiresAtMs: number;
  /** `wechat_mini_program` or `wecom_mini_program`. */
  provider: string;
  /** The mini program's key. */
  app: string;
  /** The login created the user. */
  createdUser: boolean;
  /** WeChat mini programs. */
  openid?: string;
  /** When the mini program is bound to an open-platform account. */
  unionid?: string;
  /** WeCom mini programs: the member's userid. */
  userid?: string;
  /** Users merged into `user` by this login (unionid convergence). */
  mergedUsers: number[];
}

export interface RequestOptions {
  /** Absolute, or relative to `apiBaseUrl`. */
  url: string;
  /** Default `GET`. */
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS' | string;
  data?: unknown;
  /** Extra headers; `Authorization` is always the session's. */
  header?: Record<string, string>;
  timeout?: number;
  /** As in wx.request; default `json`. */
  dataType?: string;
  responseType?: 'text' | 'arraybuffer';
}

export interface Response<T = unknown> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

export interface PhoneNumber {
  userId: number;
  /** With the country code outside mainland China. */
  phoneNumber: string;
  purePhoneNumber: string;
  countryCode: string | null;
}

export interface UserInfo {
  /** The user after any merge the data caused. */
  userId: number;
  openid: string | null;
  unionid: string | null;
  nickname: string | null;
  avatar: string | null;
  /** WeCom `wx.qy.getEnterpriseUserInfo`: the member's userid (their name is in `nickname`). */
  userid: string | null;
  mergedUsers: number[];
}

/** The detail of a `getPhoneNumber` button event, or `wx.qy.getMobile`'s result. */
export interface PhoneDetail {
  errMsg?: string;
  /** WeChat (base library 2.21.2+): exchanged by the bridge. */
  code?: string;
  encryptedData?: string;
  iv?: string;
}

/** The data returned by `wx.getUserInfo` / `wx.getUserProfile` / `wx.qy.getEnterpriseUserInfo`. */
export interface EncryptedInput {
  encryptedData: string;
  iv: string;
}

export interface Client {
  /** Which login this client uses. */
  readonly platform: Platform;
  readonly tenant: string;
  readonly miniProgram: string;
  readonly storageKey: string;
  /** The logged-in user, or null. */
  readonly user: BridgeUser | null;
  /** The session token (`wxs_…`), or null when there is none or it has expired. */
  getToken(): string | null;
  /** `wx.login` / `wx.qy.login`, then the bridge's login; keeps the token. Concurrent calls share one login. */
  login(): Promise<LoginResult>;
  /**
   * `wx.request` with `Authorization: Bearer <token>`; logs in first when there is no token, and once
   * more (then retries once) when the answer is a 401 `session_expired` / `session_revoked` /
   * `session_unknown` / `session_malformed`. Non-2xx rejects with a `WxbridgeError`.
   */
  request<T = unknown>(options: RequestOptions): Promise<Response<T>>;
  /** The `getPhoneNumber` event (or its detail, or `wx.qy.getMobile`'s result) -> the phone number. */
  getPhoneNumber(eventOrDetail: PhoneDetail | { detail: PhoneDetail }): Promise<PhoneNumber>;
  /** Decrypt user info on the bridge (watermark checked; the user's profile is filled). */
  decryptUserInfo(input: EncryptedInput): Promise<UserInfo>;
  /** Forget the session and revoke it on the bridge. Never rejects. */
  logout(): Promise<{ revokedOnServer: boolean }>;
}

/**
 * Every failure. `code`: the bridge's error code (`invalid_code`, `session_expired`, `session_key_stale`,
 * …), `http_<status>` for an answer without one, or one of the SDK's own: `bad_argument`,
 * `wx_login_failed`, `network_error`, `bad_response`, `user_denied`, `wx_api_failed`, `not_logged_in`.
 * `status`: the HTTP status, 0 when there was none. The message never holds the session token.
 */
export class WxbridgeError extends Error {
  constructor(code: string, message: string, status?: number, extra?: { data?: unknown; errMsg?: string });
  readonly name: 'WxbridgeError';
  readonly code: string;
  readonly status: number;
  /** The response body of an HTTP failure (the token scrubbed out). */
  readonly data?: unknown;
  /** wx's `errMsg` of a failed wx call. */
  readonly errMsg?: string;
}

export function createClient(options: ClientOptions): Client;

declare const wxbridgeMiniprogram: {
  createClient: typeof createClient;
  WxbridgeError: typeof WxbridgeError;
};
export default wxbridgeMiniprogram;
