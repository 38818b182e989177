// A compile-only check of index.d.ts (never run; only type imports, so a runner that strips types finds
// nothing to execute):
//   npx -y -p typescript@5 tsc --noEmit --strict --target es2017 --module commonjs sdk/miniprogram/test/types-check.ts
import type * as sdk from '../index';
import type wxbridge from '../index';

declare const createClient: typeof sdk.createClient;
declare const WxbridgeError: typeof sdk.WxbridgeError;
declare const defaultExport: typeof wxbridge;
declare const wx: sdk.WxLike;

export async function usage(): Promise<void> {
  const shop: sdk.Client = createClient({ baseUrl: 'https://bridge.example.com', tenant: 'acme', miniProgram: 'shop', wx });
  const ops = defaultExport.createClient({
    baseUrl: 'https://bridge.example.com',
    tenant: 'acme',
    miniProgram: 'ops',
    platform: 'wecom',
    storageKey: 'ops-session',
    apiBaseUrl: 'https://api.example.com'
  });
  const platform: sdk.Platform = ops.platform;
  const login: sdk.LoginResult = await shop.login();
  const expires: number = login.expiresAtMs;
  const userid: string | undefined = login.userid;
  const token: string | null = shop.getToken();
  const user: sdk.BridgeUser | null = shop.user;

  interface Order { id: number }
  const res = await shop.request<Order[]>({ url: '/orders', method: 'POST', data: { a: 1 }, header: { 'X-Trace': '1' } });
  const firstId: number | undefined = res.data[0]?.id;
  const status: number = res.statusCode;

  const phone: sdk.PhoneNumber = await shop.getPhoneNumber({ detail: { errMsg: 'getPhoneNumber:ok', code: 'c' } });
  const pure: string = phone.purePhoneNumber;
  await ops.getPhoneNumber({ encryptedData: 'e', iv: 'i' });
  const info: sdk.UserInfo = await shop.decryptUserInfo({ encryptedData: 'e', iv: 'i' });
  const merged: number[] = info.mergedUsers;
  const out: { revokedOnServer: boolean } = await shop.logout();

  try {
    await shop.request({ url: 'https://api.example.com/x' });
  } catch (e) {
    if (e instanceof WxbridgeError) {
      const code: string = e.code;
      const httpStatus: number = e.status;
      const message: string = e.message;
      void [code, httpStatus, message];
    }
  }
  const err: Error = new WxbridgeError('bad_argument', 'x', 0);

  // @ts-expect-error platform is 'wechat' | 'wecom' | 'auto'
  createClient({ baseUrl: 'https://b', tenant: 't', miniProgram: 'm', platform: 'alipay' });
  // @ts-expect-error miniProgram is required
  createClient({ baseUrl: 'https://b', tenant: 't' });
  // @ts-expect-error decryptUserInfo needs iv
  await shop.decryptUserInfo({ encryptedData: 'e' });
  // @ts-expect-error request needs a url
  await shop.request({ method: 'GET' });

  void [platform, expires, userid, token, user, firstId, status, pure, merged, out, err];
}
