-- mod_auth_smartraiden: key-bound logins for SmartRaiden nodes (SPEC §4), Prosody 0.12.
--
-- A node logs in as <40 lowercase hex digits of its address>@<domain> with a password that
-- is a fresh signature by its key ("sr1.<ms>.<signature>"). This provider asks the local
-- verifier (`smartraiden xmpp-auth --http 127.0.0.1:PORT`) over HTTP, asynchronously: a login
-- waits for the answer without stalling any other client (a module that ran a program per
-- login blocked the whole server meanwhile). A verifier that is down refuses logins with a
-- clear reason, and once it is back logins work again without touching Prosody.
--
-- Every well-formed address exists as a user, so a message to a node that never logged in
-- waits offline instead of bouncing. Nothing can create, change or delete an account.
--
-- Config:
--   plugin_paths = { "<directory of this file>" }
--   authentication = "smartraiden"
--   smartraiden_verifier_url = "http://127.0.0.1:5290/auth"

local new_sasl = require "util.sasl".new;
local http = require "net.http";
local async = require "util.async";

local host = module.host;
local verifier_url = module:get_option_string("smartraiden_verifier_url", "http://127.0.0.1:5290/auth");

local function well_formed(username)
	return type(username) == "string" and #username == 40 and username:match("^[0-9a-f]+$") ~= nil;
end

local provider = {};

-- true, or nil and the reason the login is refused.
function provider.test_password(username, password)
	if not well_formed(username) then
		return nil, "user name is not a node address (40 lowercase hex digits)";
	end
	local wait, done = async.waiter();
	local ok, reason;
	http.request(verifier_url, {
		method = "POST";
		body = username .. "\n" .. host .. "\n" .. password;
		headers = { ["Content-Type"] = "text/plain" };
	}, function (body, code)
		if code == 200 then
			ok = true;
		elseif type(code) == "number" and code >= 400 and code < 500 then
			reason = body;
		else
			reason = "login verifier unreachable (" .. tostring(code) .. " " .. tostring(body) .. ")";
		end
		done();
	end);
	wait();
	if ok then return true; end
	module:log("warn", "login of %s@%s refused: %s", username, host, tostring(reason));
	return nil, reason;
end

function provider.user_exists(username)
	return well_formed(username);
end

function provider.get_password()
	return nil, "passwords are signatures by the node's key";
end

function provider.set_password()
	return nil, "passwords are signatures by the node's key";
end

function provider.create_user()
	return nil, "accounts are the nodes' keys: nothing to create";
end

function provider.delete_user()
	return nil, "accounts are the nodes' keys: nothing to delete";
end

function provider.users()
	return function() return nil; end;
end

-- The SASL failure carries the verifier's reason in its <text>, so the node can say why.
local function with_reason(handler)
	local process, clean_clone = handler.process, handler.clean_clone;
	function handler:process(message)
		local status, condition, text = process(self, message);
		if status == "failure" and self.smartraiden_reason then
			text = self.smartraiden_reason;
		end
		return status, condition, text;
	end
	function handler:clean_clone()
		return with_reason(clean_clone(self));
	end
	return handler;
end

function provider.get_sasl_handler()
	return with_reason(new_sasl(host, {
		plain_test = function (sasl, username, password)
			local ok, reason = provider.test_password(username, password);
			if not ok then sasl.smartraiden_reason = reason; end
			return ok, true;
		end;
	}));
end

module:provides("auth", provider);
